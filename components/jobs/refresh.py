"""What the nightly run does around the pipeline: refresh the data, decide whether anything
changed since the last registered version, and push data and artifacts to the DVC remote.
``flows/nightly.py`` schedules these.

    $ .venv/bin/python -m flows.nightly        # refresh_data, retrain_decision, the stages, push_artifacts
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from components.config import Params
from components.data.splits import SPLITS, split_path
from components.errors import PipelineError
from components.io import registry
from components.io.dvc import DvcError, data_version, dvc
from components.jobs import prepare, sources


class OperationError(PipelineError, RuntimeError):
    """A refresh or push that could not be done; the message says which command and why."""


def _dvc(root: Path, *args: str) -> str:
    try:
        return dvc(root, *args)
    except DvcError as error:
        raise OperationError(str(error)) from None


def refresh_data(params: Params, root: Path) -> str:
    """Brings ``data.dir`` up to date from ``orchestration.refresh``; returns what it did."""
    refresh = params.orchestration.refresh
    data_dir = root / params.data.dir
    if refresh.source == "prepare":
        prepare.run(params, root)
        return f"rebuilt the splits from {params.data.source}"
    if refresh.source == "path":
        source = (root / str(refresh.path)).resolve()
        missing = [split for split in SPLITS if not split_path(source, split).exists()]
        if missing:
            raise OperationError(f"{source}: refresh.path lacks {', '.join(f'{split}.parquet' for split in missing)}")
        data_dir.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            shutil.copyfile(split_path(source, split), split_path(data_dir, split))
        return f"copied {', '.join(f'{split}.parquet' for split in SPLITS)} from {source}"
    if refresh.source == "dvc_pull":
        remote = ["-r", params.orchestration.dvc_remote] if params.orchestration.dvc_remote else []
        _dvc(root, "pull", *remote, params.data.dir)
        return f"dvc pull {params.data.dir}"
    _dvc(root, "update", str(refresh.target))
    return f"dvc update {refresh.target}"


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    data_version: str
    params_hash: str


def retrain_decision(params: Params, root: Path) -> RetrainDecision:
    """Retrain unless the newest registered version saw the same data and parameters."""
    version = data_version(root, params.data.dir)
    params_hash = params.fingerprint()
    latest = registry.latest_version(params.registry.model_name)
    if latest is None:
        return RetrainDecision(True, "no registered version yet", version, params_hash)
    number, tags = latest
    changed = [
        f"{label} {tags.get(key, '-')} -> {now}"
        for label, key, now in (("data", "data_version", version), ("params", "params_hash", params_hash))
        if tags.get(key) != now
    ]
    if changed:
        return RetrainDecision(True, f"changed since v{number}: {'; '.join(changed)}", version, params_hash)
    return RetrainDecision(
        False, f"data {version} and params {params_hash} unchanged since v{number}", version, params_hash
    )


def push_artifacts(params: Params, root: Path) -> str:
    """Records what the stages wrote in ``dvc.lock`` and pushes data and models to the remote.

    The flow runs the stages itself, not through ``dvc repro``, so ``dvc commit`` first
    hashes their outputs into the lock file and the cache; ``dvc push`` then uploads them.
    The ``sources`` stage is DVC's own (it decides when ``prepare`` runs): its fingerprint
    is written here, so that every output ``dvc.yaml`` declares exists to be committed.
    """
    sources.run(params, root)
    _dvc(root, "commit", "--force")
    remote = ["-r", params.orchestration.dvc_remote] if params.orchestration.dvc_remote else []
    _dvc(root, "push", *remote)
    return f"dvc push to {params.orchestration.dvc_remote or 'the default remote'}"

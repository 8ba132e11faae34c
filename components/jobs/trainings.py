"""What the training stages (``baselines``, ``train_mtl``, ``compare``, ``affinity``) share:
seeded networks, the nested MLflow run of a training, and the torchrun relaunch for
``training.devices > 1``.

Example::

    >>> from components.config import load_params
    >>> params = load_params("params.yaml")
    >>> launches_processes(params)             # training.devices: 1
    False
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from components.config import Params
from components.data.encoders import encoder_dir, fitted_features
from components.data.splits import split_path
from components.io import tracking
from components.io.dvc import content_md5, data_version
from components.io.project_lock import project_lock
from components.models import MultiTaskNetwork, build_model
from components.tasks import Task
from components.training import distributed
from components.training.loop import EpochRecord
from components.training.resume import Resume, code_version, find_finished, find_state, training_key
from components.training.seeding import seed_everything

#: tags of a training run that continued a killed one
RESUMED_FROM_TAG = "mtl.resumed_from_run"
RESUMED_AFTER_TAG = "mtl.resumed_after_epoch"
REUSED_FROM_TAG = "mtl.reused_from_run"


def seeded_model(params: Params, tasks: dict[str, Task], root: Path) -> MultiTaskNetwork:
    """Initial weights depend on the seed alone, not on what ran earlier in the process;
    a features input's width and embeddings are what ``prepare`` fitted under ``root``."""
    features = fitted_features(params, encoder_dir(root / params.data.dir))
    seed_everything(params.seed)
    return build_model(params, tasks, features=features)


def training_params(params: Params) -> dict[str, object]:
    """What a training run logs as MLflow params."""
    return {
        **tracking.flatten("training", params.training.model_dump(mode="json")),
        **tracking.flatten("model", params.model.model_dump(mode="json")),
        "seed": params.seed,
    }


def resume_key(params: Params, root: Path, label: str) -> str:
    """What a killed training's resume state must match to be continued, and a finished
    training's to be reused: these parameters, the prepared data (splits and fitted encoder,
    by the version DVC gives them), the pipeline's code and which training it is."""
    return training_key(params.fingerprint(), data_version(root, params.data.dir), code_version(), label)


SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_split_inputs(run_id: str, params: Params, root: Path) -> None:
    """The splits a training reads, as the run's dataset inputs: named by source and split,
    identified by the md5 DVC gives each file, with their row counts."""
    for split, context in SPLIT_CONTEXTS.items():
        path = split_path(root / params.data.dir, split)
        tracking.log_dataset(
            run_id,
            name=f"{params.data.source}-{split}",
            digest=content_md5(path),
            source=path.as_posix(),
            context=context,
            profile=json.dumps({"num_rows": pq.read_metadata(path).num_rows}),
        )


@contextlib.contextmanager
def training_run(
    parent_run_id: str, name: str, run_params: dict[str, object], directory: Path, key: str, data: tuple[Params, Path]
) -> Iterator[Resume]:
    """The nested MLflow run of one training, ended FINISHED or FAILED, and the resume state a
    killed run of the same training left in ``directory``, if any: that run is ended KILLED,
    and the new one is tagged with where it resumed and gets the earlier epochs' metrics.
    A training that already finished with this key is reused: the new run is tagged with
    the run that trained it and gets all its epochs' metrics. The run records the splits of
    ``data`` (params, project root) as its inputs. The torchrun processes other than rank 0
    log nothing (``run_id`` None)."""
    finished = find_finished(directory, key)
    state = None if finished is not None else find_state(directory, key)
    if not distributed.current().is_main:
        yield Resume(key, None, state, finished)
        return
    run_id = tracking.start_child_run(parent_run_id, name, run_params)
    log_split_inputs(run_id, *data)
    earlier: list[dict[str, Any]] = []  # epochs trained before this run: their metrics go on it too
    if finished is not None:
        tracking.set_tags(run_id, {REUSED_FROM_TAG: finished.run_id or ""})
        earlier = finished.history
    elif state is not None:
        killed = state["run_id"]
        if killed:
            tracking.end_orphaned_run(killed)
        tracking.set_tags(run_id, {RESUMED_FROM_TAG: killed or "", RESUMED_AFTER_TAG: str(state["epoch"])})
        earlier = state["history"]
    for record in earlier:
        tracking.log_metrics(run_id, EpochRecord(**record).as_metrics(), step=record["epoch"])
    try:
        yield Resume(key, run_id, state, finished)
    except BaseException as error:  # a stopped run may resume: KILLED, as a later start would mark it
        tracking.end_run(run_id, failed=True, killed=tracking.stopped(error))
        raise
    tracking.end_run(run_id)


#: called after each epoch of a training with its record and run: a tuning trial's pruner
EpochHook = Callable[[EpochRecord, str | None], None]


def with_hook(
    logger: Callable[[EpochRecord], None] | None, hook: EpochHook | None, run_id: str | None
) -> Callable[[EpochRecord], None] | None:
    """The epoch callback that logs an epoch, then hands it and the run to ``hook`` (a tuning
    trial's pruner, which may stop the training)."""
    if hook is None:
        return logger

    def on_epoch(record: EpochRecord) -> None:
        if logger is not None:
            logger(record)
        hook(record, run_id)

    return on_epoch


def epoch_logger(run_id: str | None) -> Callable[[EpochRecord], None] | None:
    """Logs each epoch's metrics on the training's run; None where this process logs nothing."""
    if run_id is None:
        return None
    return lambda record: tracking.log_metrics(run_id, record.as_metrics(), step=record.epoch)


def launches_processes(params: Params) -> bool:
    """``training.devices > 1`` and not yet inside the torchrun processes."""
    return params.training.devices > 1 and not distributed.current().is_distributed


def launch(params: Params, root: Path, cli_args: list[str]) -> None:
    """Runs a training stage in ``training.devices`` torchrun processes, on these parameters.
    The project is held meanwhile (already, when a stage command or flow called this), and
    the workers, its child processes, share the hold."""
    wait = params.orchestration.project_lock_wait_s
    with project_lock(root, f"torchrun {' '.join(cli_args)}", wait), tempfile.TemporaryDirectory() as scratch:
        params_file = Path(scratch) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
        distributed.launch(
            [*cli_args, "--params", str(params_file), "--root", str(root.resolve())], params.training.devices
        )

"""Stage ``register``: the chosen checkpoint logged as an MLflow pyfunc model, registered,
tagged, described by its model card, and the aliases moved under the champion guard.

    $ mtl register           # prints the results table
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from components.config import Params
from components.data.encoders import encoder_dir
from components.data.splits import read_split
from components.errors import PipelineError
from components.io import registry, tracking
from components.io.dvc import data_version, experiment_name, git_commit
from components.io.serving import write_model_files
from components.jobs.layout import (
    MTL_DIR,
    MTL_REPORT,
    REGISTRATION_REPORT,
    SELECTION_REPORT,
    read_json,
    timed,
    write_json,
)
from components.jobs.versions import champion_intervals, log_and_register
from components.report import model_card, registered_model_description
from components.selection import SelectionReport, promotion_decision
from components.tasks import task_objectives
from components.training.checkpoints import load_checkpoint


def methods(params: Params) -> dict[str, str]:
    """The MTL methods a model card names."""
    named: dict[str, str] = {
        "sharing": params.model.sharing,
        "loss weighting": params.training.loss_weighting.name,
        "gradient": params.training.gradient.name,
    }
    if params.data.datasets:
        named["dataset sampling"] = params.training.sampling
    return named


@timed("register")
def run(params: Params, root: Path, parent_run_id: str) -> registry.Registration | registry.NotRegistered:
    """Registers the selected checkpoint once; ``champion`` moves only under the champion guard.

    A registration is a transaction keyed by data version, params hash and checkpoint sha256
    (``registration_key``) under a lock on the registry: a rerun with the same key returns the
    version already registered; a version left ``incomplete`` by a crash (created, not yet
    tagged or aliased) is completed; two registrations at once create one version.

    Inside a DVC experiment (``dvc exp run``) nothing is registered unless
    ``registry.register_experiments`` is true: trying a setting must not create versions or
    move ``challenger``. The results are logged on the runs either way.
    """
    selection = SelectionReport.from_dict(read_json(root / SELECTION_REPORT))
    trained = read_json(root / MTL_REPORT)
    _refuse_other_parameters(params, trained, root)
    mtl_run_id = training_run_id(trained, selection.seed)
    experiment = experiment_name()
    if experiment and not params.registry.register_experiments:
        registry.with_retries(lambda: _log_results(params, selection, parent_run_id, mtl_run_id), on_retry=print)
        skipped = registry.NotRegistered(
            f"not registered: DVC experiment {experiment} "
            "(set registry.register_experiments: true to register experiments)"
        )
        write_json(root / REGISTRATION_REPORT, asdict(skipped))
        return skipped
    name = params.registry.model_name
    version_of_data = data_version(root, params.data.dir)
    key = registry.registration_key(version_of_data, params.fingerprint(), selection.sha256)

    def transaction() -> registry.Registration:
        _refuse_a_lost_registry(root)
        existing = registry.version_with_key(name, key)
        _log_results(params, selection, parent_run_id, mtl_run_id)
        if existing is not None and registry.INCOMPLETE not in existing.tags:
            return registry.Registration.of_version(name, existing, parent_run_id)
        if existing is not None:
            version = str(existing.version)
        else:
            version = _log_and_register(params, root, selection, mtl_run_id, key)
        return _complete(params, root, selection, version, version_of_data, parent_run_id)

    with registry.registration_lock(registry.lock_path(root)):
        # every step can run again: a retry finds the version by its key and completes it
        result = registry.with_retries(transaction, on_retry=print)
    write_json(root / REGISTRATION_REPORT, asdict(result))
    return result


class TrainedWithOtherParameters(PipelineError):
    """The MTL model on disk was trained under other values than ``params.yaml`` holds."""


def _refuse_other_parameters(params: Params, trained: dict[str, Any], root: Path) -> None:
    """A version records ``params.yaml``'s values: weights trained under others (a setting
    edited after training, or a training that failed and left the last good one) are refused."""
    recorded = trained.get("trained_with")
    if recorded is not None and recorded != params.training_fingerprint():
        raise TrainedWithOtherParameters(
            f"{root / MTL_REPORT}: the MTL model was trained with other data, tasks, model, training or tuning "
            "settings than params.yaml holds now; train it again (`dvc repro`, or `mtl baselines`, "
            "`mtl train-mtl` and `mtl select`) before registering"
        )


def training_run_id(trained: dict[str, Any], seed: int | None) -> str:
    """The MLflow run of the MTL training with ``seed`` (the chosen checkpoint's), from
    ``reports/train_mtl.json``; its first seed's where the report names no seed."""
    runs = {entry["seed"]: entry["run_id"] for entry in trained.get("seeds", [])}
    return str(runs.get(seed, trained["run_id"]))


def _lost_training_run(run_id: str) -> registry.RegistryError:
    """The model is logged on the MTL training's run: a tracking store that lacks it was
    replaced since training (a deleted ``mlflow.db`` with ``models/`` kept)."""
    return registry.RegistryError(
        f"{MTL_REPORT} names the MTL training run {run_id}, which the tracking store at "
        f"{tracking.tracking_uri()} does not hold (was the database replaced after training?): point "
        "MLFLOW_TRACKING_URI at the one it trained under, or train again (`mtl train-mtl`, then `mtl select`)"
    )


def _refuse_a_lost_registry(root: Path) -> None:
    """A registry that no longer knows the model the last registration recorded was deleted
    or moved: registering now would silently start a new one with a new v1 champion."""
    last = registry.Registration.read(root / REGISTRATION_REPORT)
    if last is not None and not registry.is_registered(last.model_name):
        raise registry.RegistryError(
            f"{REGISTRATION_REPORT} records {last.model_name} v{last.version}, but the registry at "
            f"{tracking.tracking_uri()} has no model {last.model_name!r} (was the database deleted or moved?); "
            f"restore it or point MLFLOW_TRACKING_URI at it, or delete {REGISTRATION_REPORT} to start a new registry"
        )


def _log_results(params: Params, selection: SelectionReport, parent_run_id: str, mtl_run_id: str) -> None:
    """The chosen checkpoint's test metrics on the MTL run, under the keys the baseline runs
    use (``test/<task>.<metric>``, so the run-compare view lines them up), and the parameters
    and the policy's numbers on the pipeline run."""
    tracking.log_params(
        parent_run_id, tracking.flatten("", params.model_dump(mode="json")) | {"params_hash": params.fingerprint()}
    )
    test = {f"test/{t}.{r.metric}": r.test for t, r in selection.tasks.items()}
    try:  # found missing here rather than by a lookup first: one statement fewer under the registry's lock
        tracking.log_metrics(mtl_run_id, test)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise _lost_training_run(mtl_run_id) from None
        raise
    tracking.log_metrics(
        parent_run_id,
        test
        | {"delta_m": selection.delta_m, "accepted": int(selection.accepted)}
        | {f"delta/{t}": r.relative_change for t, r in selection.tasks.items()},
    )
    tracking.client().log_dict(parent_run_id, selection.to_dict(), "selection.json")


def _log_and_register(params: Params, root: Path, selection: SelectionReport, mtl_run_id: str, key: str) -> str:
    """The chosen checkpoint logged on the MTL training's run (beside its curves and test
    metrics) and registered as a new, ``incomplete`` version; returns the version."""
    checkpoint = load_checkpoint(root / MTL_DIR / selection.checkpoint, selection.sha256)
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = write_model_files(checkpoint, params, Path(scratch), encoder_dir(root / params.data.dir))
        return log_and_register(params, artifacts, read_split(root / params.data.dir, "test"), mtl_run_id, key)


def _complete(
    params: Params, root: Path, selection: SelectionReport, version: str, version_of_data: str, parent_run_id: str
) -> registry.Registration:
    """Tags, model card and aliases of a version; the alias move comes last."""
    tracker = tracking.client()
    name = params.registry.model_name
    test = selection.test_metrics()
    champion = registry.current_champion(name)
    if champion is not None and champion[0] == version:
        champion = None  # completing a version that already became champion
    rules = params.selection
    against_champion = None
    if champion is not None and rules.rule == "lower_bound" and selection.accepted:
        frame = read_split(root / params.data.dir, "test")
        models = [registry.load_version(name, v).unwrap_python_model() for v in (version, champion[0])]
        against_champion = champion_intervals(params, frame, *models)
    decision = promotion_decision(
        selection.verdict,
        test,
        champion[1] if champion else None,
        task_objectives(params),
        champion[0] if champion else None,
        rules.rule,
        against_champion,
    )
    tags = {
        "verdict": selection.verdict,
        registry.REASON_TAG: selection.reason(),
        registry.TEST_WARNINGS_TAG: ",".join(selection.test_regressions()),
        "delta_m": f"{selection.delta_m:.6f}",
        "data_version": version_of_data,
        "git_commit": git_commit(root),
        "params_hash": params.fingerprint(),
        "checkpoint": selection.checkpoint,
    } | {f"{registry.TEST_METRIC_TAG}{t}": f"{v:.6f}" for t, v in test.items()}
    tags |= {"selection_rule": selection.rule} | {  # the intervals the verdict could rest on, as "low,high"
        f"interval.{name}": f"{low:.6f},{high:.6f}"
        for name, (low, high) in [(t, r.interval) for t, r in selection.tasks.items() if r.interval]
        + ([("delta_m", selection.delta_m_interval)] if selection.delta_m_interval else [])
    }
    tags |= {  # what the champion guard judged under lower_bound: candidate against champion, test rows
        f"vs_champion.{task}": f"{low:.6f},{high:.6f}" for task, (low, high) in (against_champion or {}).items()
    }
    for key, value in tags.items():
        tracker.set_model_version_tag(name, version, key, value)
    card = model_card(name, version, selection, tags, decision.reason, champion, methods(params), params)
    tracker.update_model_version(name, version, description=card)
    tracker.update_registered_model(name, description=registered_model_description(params))
    model_tags = {
        "tasks": ",".join(params.tasks),
        "inputs": ",".join(sorted({spec.kind for spec in params.data.inputs().values()})),
        "backbone": params.model.backbone,
        "data_source": params.data.source,
    }
    for key, value in model_tags.items():
        tracker.set_registered_model_tag(name, key, value)
    tracker.log_text(parent_run_id, card, "model_card.md")
    aliases = registry.apply_aliases(name, version, decision)
    return registry.Registration(
        model_name=name,
        version=version,
        aliases=aliases,
        champion_moved=decision.promote,
        reason=decision.reason,
        run_id=parent_run_id,
        model_uri=f"models:/{name}@{registry.CHALLENGER}",
        tags=tags,
    )

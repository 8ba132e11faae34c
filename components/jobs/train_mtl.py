"""Stage ``train_mtl``: the multi-task model with the configured sharing, loss weighting and
gradient method; a checkpoint every epoch, for ``select`` to choose from. It stops early on
the score ``select`` ranks checkpoints by (the weighted mean relative change against the
baselines' validation metrics, from ``reports/baselines.json``), so the baselines train
first. A killed training continues from its last complete epoch when started again
(``components.training.resume``).
With ``training.seeds: N`` the model trains N times, seeds ``seed`` … ``seed + N - 1``, each
in its own folder (``models/mtl`` for the first, ``models/mtl/seed-<s>`` for the others).

    $ mtl train-mtl             # every seed
    $ mtl train-mtl --seed 1    # one
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components.config import Params
from components.errors import PipelineError
from components.io import tracking
from components.jobs import tuning
from components.jobs.inputs import check_validated, load_tensor_splits, write_curves
from components.jobs.layout import (
    BASELINES_REPORT,
    CURVES,
    MTL_DIR,
    MTL_REPORT,
    TRAINING_RESULT,
    mtl_dir,
    read_json,
    remove_other_seeds,
    timed,
    training_seeds,
    write_json,
)
from components.jobs.trainings import (
    EpochHook,
    epoch_logger,
    launch,
    launches_processes,
    resume_key,
    seeded_model,
    training_params,
    training_run,
    with_hook,
)
from components.objectives import weighted_score
from components.tasks import build_tasks, task_objectives
from components.training import distributed
from components.training.agreement import agreement_line, mean_over_epochs
from components.training.checkpoints import MANIFEST
from components.training.loader import TensorSplit
from components.training.loop import train, training_ending
from components.training.stopping import score_gain

TrainSeed = Callable[[int], dict[str, Any] | None]


@timed("train_mtl")
def run(params: Params, root: Path, parent_run_id: str, train_seed: TrainSeed | None = None) -> dict[str, Any]:
    """Trains with every seed, each logging its epochs under ``parent_run_id``, then writes
    ``reports/train_mtl.json``: the first seed's training, and every seed's run under
    ``seeds``. ``train_seed(seed)`` trains one elsewhere (a Prefect work pool)."""
    check_validated(params, root)
    remove_other_seeds(root / MTL_DIR, params)
    if train_seed is None:
        # read once for every seed, unless each is handed to its own torchrun processes
        splits = None if launches_processes(params) else load_tensor_splits(params, root, ("train", "val"))

        def train_seed(seed: int) -> dict[str, Any] | None:
            return train_one(params, root, parent_run_id, seed, splits)

    results = [train_seed(seed) for seed in training_seeds(params)]
    if not distributed.current().is_main:  # under torchrun, rank 0 reports
        return {}
    done = [r for r in results if r is not None]
    first = done[0]
    write_curves(root / CURVES / "mtl.csv", first["curves"])
    summary = {k: v for k, v in first.items() if k != "curves"}
    summary["trained_with"] = params.training_fingerprint()  # what register checks params.yaml against
    summary["seeds"] = [
        {"seed": r["seed"], "run_id": r["run_id"], "final_val": r["final_val"], "ending": r["ending"]} for r in done
    ]
    write_json(root / MTL_REPORT, summary)
    return summary


def baseline_reference(params: Params, root: Path) -> dict[str, float]:
    """Each task's baseline validation metric (the seed mean), what the MTL model's
    early-stopping score is measured against."""
    path = root / BASELINES_REPORT
    if not path.exists():
        raise MissingBaselines(
            f"train_mtl: {path} is missing: the MTL model stops on its score against the "
            "baselines, so run `mtl baselines` (or `dvc repro`) first"
        )
    report = read_json(path)
    missing = sorted(set(params.tasks) - set(report))
    if missing:
        raise MissingBaselines(f"train_mtl: {path} has no baseline for task(s) {missing}: run `mtl baselines` again")
    return {name: float(report[name]["val"]) for name in params.tasks}


class MissingBaselines(PipelineError):
    """``reports/baselines.json`` is missing or lacks a configured task."""


def train_one(
    params: Params,
    root: Path,
    parent_run_id: str,
    seed: int | None = None,
    splits: dict[str, TensorSplit] | None = None,
) -> dict[str, Any] | None:
    """One training with ``seed`` (default ``params.seed``), tuned first when
    ``tuning.trials`` (``components.jobs.tuning``); its summary, also left beside its
    checkpoints. ``splits`` lets a caller training several read the data once. None on
    torchrun processes other than rank 0."""
    seed = params.seed if seed is None else seed
    directory = mtl_dir(root, params, seed)
    if launches_processes(params):
        launch(params, root, ["train-mtl", "--seed", str(seed), "--parent-run-id", parent_run_id])
        return dict(read_json(directory / TRAINING_RESULT))
    reference = baseline_reference(params, root)
    goals = task_objectives(params)
    splits = splits or load_tensor_splits(params, root, ("train", "val"))
    # the objective early stopping and tuning watch is part of what the training is
    label = f"mtl against {json.dumps(reference, sort_keys=True)}"

    def fit(
        variant: Params, folder: Path, suffix: str, after_epoch: EpochHook | None
    ) -> tuple[dict[str, Any] | None, float]:
        result = _fit(variant, root, parent_run_id, seed, splits, folder, suffix, after_epoch, reference, label)
        return result, result["best_score"] if result is not None else float("nan")

    if not params.tuning.trials:
        return fit(params, directory, "", None)[0]
    side = tuning.Side(
        "mtl", mtl_dir(root, params, params.seed), lambda record: weighted_score(record.val_metrics, reference, goals)
    )
    key = resume_key(params, root, label)
    result, study = tuning.tuned_training(params, root, side, key, fit, seed, directory)
    if result is None:
        return None
    result = result | {"tuning": study}
    write_json(directory / TRAINING_RESULT, result)
    return result


def _fit(
    params: Params,
    root: Path,
    parent_run_id: str,
    seed: int,
    splits: dict[str, TensorSplit],
    directory: Path,
    name_suffix: str,
    after_epoch: EpochHook | None,
    reference: dict[str, float],
    label: str,
) -> dict[str, Any] | None:
    """One training of the MTL model with ``params`` in ``directory``, its run named with
    ``name_suffix``; ``after_epoch`` sees each epoch once it is logged."""
    seeded = params.model_copy(update={"seed": seed})
    tasks = build_tasks(params.tasks)
    goals = task_objectives(params)
    model = seeded_model(seeded, tasks, root)
    name = f"mtl-{params.model.sharing}-{params.training.loss_weighting.name}-{params.training.gradient.name}"
    shown = "mtl" if params.training.seeds == 1 else f"mtl seed {seed}"
    name += ("" if params.training.seeds == 1 else f"-seed{seed}") + name_suffix
    key = resume_key(seeded, root, label)
    with training_run(parent_run_id, name, training_params(seeded), directory, key, (params, root)) as resume:
        run_id = resume.run_id
        history = train(
            model,
            tasks,
            splits["train"],
            splits["val"],
            params.training,
            seed,
            directory,
            label=shown + name_suffix,
            on_epoch=with_hook(epoch_logger(run_id), after_epoch, run_id),
            resume=resume,
            gain=score_gain(reference, goals),
        )
        if run_id is None:  # not rank 0: that process reports
            return None
        tracking.client().log_artifact(run_id, str(directory / MANIFEST))
    cosine = mean_over_epochs([r.gradient_cosine for r in history])
    conflict = mean_over_epochs([r.gradient_conflict for r in history])
    if cosine:
        print(f"{shown}: task gradients on the backbone, mean over training: {agreement_line(cosine, conflict)}")
    result = {
        "seed": seed,
        "run_id": run_id,
        "epochs": len(history),
        "ending": asdict(training_ending(history, params.training)),
        "best_score": max(weighted_score(r.val_metrics, reference, goals) for r in history),
        "final_val": history[-1].val_metrics,
        "seconds_per_epoch": round(sum(r.seconds for r in history) / len(history), 2),
        "gradient_agreement": {"cosine": cosine, "conflict": conflict},
        "curves": {n: [r.val_metrics[n] for r in history] for n in tasks},
    }
    # on disk too: a training on another worker or under torchrun hands its result back this way
    write_json(directory / TRAINING_RESULT, result)
    return result

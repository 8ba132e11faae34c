"""Stage ``train_mtl``: the multi-task model with the configured sharing, loss weighting and
gradient method; a checkpoint every epoch, for ``select`` to choose from. A killed training
continues from its last complete epoch when started again (``components.training.resume``).

    $ mtl train-mtl
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config import Params
from components.io import tracking
from components.jobs.common import (
    CURVES,
    MTL_DIR,
    MTL_REPORT,
    read_json,
    timed,
    write_json,
)
from components.jobs.trainings import (
    epoch_logger,
    launch,
    launches_processes,
    load_tensor_splits,
    resume_key,
    seeded_model,
    training_params,
    training_run,
    write_curves,
)
from components.tasks import build_tasks
from components.training.agreement import agreement_line, mean_over_epochs
from components.training.checkpoints import MANIFEST
from components.training.loop import train


@timed("train_mtl")
def run(params: Params, root: Path, parent_run_id: str) -> dict[str, Any]:
    """Trains, logs each epoch under ``parent_run_id``, writes ``reports/train_mtl.json``."""
    if launches_processes(params):
        launch(params, root, ["train-mtl", "--parent-run-id", parent_run_id])
        return dict(read_json(root / MTL_REPORT))
    tasks = build_tasks(params.tasks)
    splits = load_tensor_splits(params, root, ("train", "val"))
    model = seeded_model(params, tasks, root)
    name = f"mtl-{params.model.sharing}-{params.training.loss_weighting}-{params.training.gradient}"
    directory = root / MTL_DIR
    key = resume_key(params, root, "mtl")
    with training_run(parent_run_id, name, training_params(params), directory, key, (params, root)) as resume:
        run_id = resume.run_id
        history = train(
            model,
            tasks,
            splits["train"],
            splits["val"],
            params.training,
            params.seed,
            directory,
            label="mtl",
            on_epoch=epoch_logger(run_id),
            resume=resume,
        )
        if run_id is None:  # not rank 0: that process reports
            return {}
        tracking.client().log_artifact(run_id, str(root / MTL_DIR / MANIFEST))
    write_curves(root / CURVES / "mtl.csv", {n: [r.val_metrics[n] for r in history] for n in tasks})
    cosine = mean_over_epochs([r.gradient_cosine for r in history])
    conflict = mean_over_epochs([r.gradient_conflict for r in history])
    if cosine:
        print(f"mtl: task gradients on the backbone, mean over training: {agreement_line(cosine, conflict)}")
    summary = {
        "run_id": run_id,
        "epochs": len(history),
        "final_val": history[-1].val_metrics,
        "seconds_per_epoch": round(sum(r.seconds for r in history) / len(history), 2),
        "gradient_agreement": {"cosine": cosine, "conflict": conflict},
    }
    write_json(root / MTL_REPORT, summary)
    return summary

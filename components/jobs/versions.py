"""Registered versions: how one is logged (its request signature and pinned requirements),
and measured as served (a version's metrics on a frame, and the paired bootstrap intervals
of a candidate against the champion). Shared by ``register`` and ``add-task`` (logging,
the champion guard), ``promote`` and the health check.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.data.encoders import DATASET_COLUMN, TEXT_INPUTS, request_frame
from components.io import registry
from components.io.serving import MultiTaskPyfunc


def score_version(params: Params, version: str, frame: pd.DataFrame) -> dict[str, float]:
    """Primary metric per task of a registered version's pyfunc on ``frame``, as served."""
    return registry.load_version(params.registry.model_name, version).unwrap_python_model().score(frame)


def champion_intervals(
    params: Params, frame: pd.DataFrame, candidate: MultiTaskPyfunc, champion: MultiTaskPyfunc
) -> dict[str, tuple[float, float]]:
    """The paired bootstrap interval of each task's change, candidate against champion, on
    the same test rows: what ``selection.rule: lower_bound`` judges the champion guard on."""
    rules = params.selection
    counts = resample_counts(len(frame), rules.bootstrap_samples, params.seed)
    theirs = champion.row_statistics(frame)
    shared = {name: task for name, task in candidate.tasks.items() if name in theirs}
    intervals, _ = pooled_intervals(shared, [theirs], [candidate.row_statistics(frame)], counts, rules.confidence)
    return intervals


def request_signature(tasks: list[str]) -> ModelSignature:
    """The optional ``tasks`` parameter, and no input schema: the model's own input contract
    (``components.io.serving.check_request``) judges every request, naming column, rule and
    rows. MLflow's input checks would answer a missing column with the whole request and a
    mistyped one with the offending value, and for columns of any type they check value by
    value: 6 s of a 10,000-row request of 1,296 pixels, against 0.02 s for the contract. The
    input example still shows the columns."""
    return ModelSignature(inputs=None, params=infer_signature(params={"tasks": tasks}).params)


def pip_requirements(params: Params) -> list[str]:
    """The distributions the served model imports for these inputs, backbone and tasks,
    pinned to the versions installed from the lock (a test checks the list against what a
    loaded model really imports)."""
    names = ["torch", "torchmetrics", "numpy", "pandas", "pandera", "pydantic", "PyYAML", "mlflow"]
    if {spec.kind for spec in params.data.inputs().values()} & set(TEXT_INPUTS):
        names.append("tokenizers")
    if params.model.backbone == "hf_encoder":
        names += ["tokenizers", "transformers"]
    if any(spec.kind == "pixels" for spec in params.data.inputs().values()):
        names.append("pillow")  # a request's image column is decoded with it
    if params.model.backbone == "hf_backbone":
        names.append("transformers")
    if any(task.type == "tagging" for task in params.tasks.values()):
        names.append("seqeval")  # the health check scores tagging with it
    if any(task.type == "detection" for task in params.tasks.values()):
        names += ["pycocotools", "scipy"]  # the health check's mAP, and the loss's matching when scoring
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in dict.fromkeys(names)]


def log_and_register(
    params: Params, artifacts: dict[str, str], test: pd.DataFrame, run_id: str | None, key: str
) -> str:
    """Logs the pyfunc model of ``artifacts`` (``write_model_files``) on the training run
    ``run_id`` and registers it as a new version of ``registry.model_name``, tagged with its
    registration ``key`` and ``incomplete`` in one call; returns the version. The input
    example is a few rows of the ``test`` split, of every dataset, so it shows every input
    column."""
    rows = test.groupby(DATASET_COLUMN).head(2) if params.data.datasets else test.head(3)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MultiTaskPyfunc(),
            artifacts=artifacts,
            code_paths=[str(Path(__file__).parents[1])],
            signature=request_signature(list(params.tasks)),
            input_example=(request_frame(params, rows), {"tasks": list(params.tasks)}),
            pip_requirements=pip_requirements(params),
        )
    tags = {registry.REGISTRATION_KEY: key, registry.INCOMPLETE: "true"}
    return str(mlflow.register_model(info.model_uri, params.registry.model_name, tags=tags).version)

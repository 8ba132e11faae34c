"""The MLflow pyfunc wrapper: a DataFrame of pixels in, one column per requested task out.

The model ships with its own copy of ``components`` (``code_paths``) and rebuilds the
network from the saved parameters, so ``mlflow.pyfunc.load_model`` works in a fresh
process without this repository on the path.

Example::

    >>> model = mlflow.pyfunc.load_model("models:/multimnist-mtl@champion")
    >>> model.predict(frame[pixel_columns(36)])   # columns: left, right, sum
    >>> model.predict(frame[pixel_columns(36)], params={"tasks": ["sum"]})   # column: sum
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
import pandas as pd
import torch

from components.config import Params
from components.data import images_tensor
from components.models import build_model
from components.tasks import build_tasks

WEIGHTS = "weights"
SPEC = "spec"


def write_model_files(checkpoint: dict, params: Params, directory: Path) -> dict[str, str]:
    """Weights-only state dict and the parameters that rebuild the network, as pyfunc artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    weights, spec = directory / "weights.pt", directory / "spec.json"
    torch.save(checkpoint["model"], weights)
    spec.write_text(json.dumps({"params": params.model_dump(mode="json")}, indent=2))
    return {WEIGHTS: str(weights), SPEC: str(spec)}


class MultiTaskModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        spec = json.loads(Path(context.artifacts[SPEC]).read_text())
        self.params = Params.model_validate(spec["params"])
        self.tasks = build_tasks(self.params.tasks)
        self.network = build_model(self.params.model, self.tasks, self.params.data.canvas_size)
        self.network.load_state_dict(torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One column per requested task (``params={"tasks": [...]}``, default all); the
        backbone runs once per batch for all of them, the other heads not at all."""
        names = requested_tasks(params, list(self.tasks))
        images = images_tensor(model_input, self.params.data.canvas_size)
        with torch.no_grad():
            outputs = self.network(images, names)
        columns = {}
        for name in names:
            prediction = self.tasks[name].predict(self.network.heads[name], outputs[name]).numpy()
            # a multilabel task answers with one list of 0/1 per row
            columns[name] = list(prediction.tolist()) if prediction.ndim > 1 else prediction
        return pd.DataFrame(columns, index=model_input.index)


def requested_tasks(params: dict | None, valid: list[str]) -> list[str]:
    requested = (params or {}).get("tasks") or valid
    if isinstance(requested, str):
        requested = [requested]
    unknown = [name for name in requested if name not in valid]
    if unknown:
        raise MlflowException(
            f"unknown task(s) {', '.join(map(str, unknown))}; valid: {', '.join(valid)}", INVALID_PARAMETER_VALUE
        )
    return list(dict.fromkeys(requested))

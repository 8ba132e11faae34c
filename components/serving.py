"""The MLflow pyfunc wrapper: a DataFrame of pixels in, one column per task out.

The model ships with its own copy of ``components`` (``code_paths``) and rebuilds the
network from the saved parameters, so ``mlflow.pyfunc.load_model`` works in a fresh
process without this repository on the path.

Example::

    >>> model = mlflow.pyfunc.load_model("models:/multimnist-mtl@champion")
    >>> model.predict(frame[pixel_columns(36)])   # columns: left, right, sum
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
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
        images = images_tensor(model_input, self.params.data.canvas_size)
        with torch.no_grad():
            outputs = self.network(images)
        columns = {}
        for name, task in self.tasks.items():
            prediction = task.predict(self.network.heads[name], outputs[name]).numpy()
            # a multilabel task answers with one list of 0/1 per row
            columns[name] = list(prediction.tolist()) if prediction.ndim > 1 else prediction
        return pd.DataFrame(columns, index=model_input.index)

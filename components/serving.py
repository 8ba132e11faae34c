"""The MLflow pyfunc wrapper: a DataFrame of inputs (pixels, text or features) in, one column
per requested task out.

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
import shutil
from pathlib import Path

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
import pandas as pd
import torch

from components.config import Params
from components.inputs import load_encoder
from components.models import build_model
from components.tasks import build_tasks

WEIGHTS = "weights"
SPEC = "spec"
INPUTS = "inputs"


def write_model_files(checkpoint: dict, params: Params, directory: Path, fitted_inputs: Path) -> dict[str, str]:
    """Weights-only state dict, the parameters that rebuild the network, and what the input
    encoder fitted on the training split (``fitted_inputs``: tokenizer, feature statistics,
    a pretrained encoder's config), as pyfunc artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    weights, spec, inputs = directory / "weights.pt", directory / "spec.json", directory / "inputs"
    torch.save(checkpoint["model"], weights)
    spec.write_text(json.dumps({"params": params.model_dump(mode="json")}, indent=2))
    if fitted_inputs.is_dir():
        shutil.copytree(fitted_inputs, inputs)
    else:  # pixels: nothing fitted
        inputs.mkdir()
    (inputs / "input.json").write_text(json.dumps(params.data.input.model_dump()))
    return {WEIGHTS: str(weights), SPEC: str(spec), INPUTS: str(inputs)}


class MultiTaskModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        spec = json.loads(Path(context.artifacts[SPEC]).read_text())
        self.params = Params.model_validate(spec["params"])
        self.tasks = build_tasks(self.params.tasks)
        # versions registered before text and feature inputs carry no inputs artifact (pixels need none)
        inputs = Path(context.artifacts.get(INPUTS, "."))
        self.encoder = load_encoder(self.params, inputs)
        self.network = build_model(self.params, self.tasks, inputs)
        self.network.load_state_dict(torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One column per requested task (``params={"tasks": [...]}``, default all); the
        backbone runs once per batch for all of them, the other heads not at all."""
        names = requested_tasks(params, list(self.tasks))
        with torch.no_grad():
            outputs = self.network(self.encoder.encode(model_input), names)
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

"""The MLflow pyfunc wrapper: a DataFrame of inputs (pixels, text, word lists, text pairs or
features) in, one column per requested task out: a class, a value, a list of 0/1 labels,
a list of tags (one per word), an answer text ("" for none) or a flat mask per row.
With several datasets a ``dataset`` column says which input each row carries; a task
answers only on its own dataset's rows (None elsewhere).

The model ships with its own copy of ``components`` (``code_paths``) and rebuilds the
network from the saved parameters, so ``mlflow.pyfunc.load_model`` works in a fresh
process without this repository on the path.

Versions registered before the package layout of ``components/io/`` unpickle the class
as ``components.serving.MultiTaskModel``; that module keeps the name pointing here.

Example::

    >>> requested_tasks({"tasks": ["sum"]}, ["left", "right", "sum"])
    ['sum']
    >>> requested_tasks(None, ["left", "right", "sum"])
    ['left', 'right', 'sum']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from components.config import Params
from components.data.encoders import load_encoder
from components.models import build_model
from components.tasks import build_tasks

WEIGHTS = "weights"
SPEC = "spec"
INPUTS = "inputs"


def write_model_files(
    checkpoint: dict[str, Any], params: Params, directory: Path, fitted_inputs: Path
) -> dict[str, str]:
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


class MultiTaskPyfunc(PythonModel):
    """The registered model: encodes a request, runs the backbone once, answers per task."""

    def __getstate__(self) -> dict[str, Any]:
        """Nothing: ``load_context`` builds everything from the artifacts, so a pickle holds
        only this class's path and survives any refactoring behind it."""
        return {}

    def load_context(self, context: Any) -> None:
        """Rebuilds encoder, tasks and network from the version's artifacts."""
        spec = json.loads(Path(context.artifacts[SPEC]).read_text())
        self.params = Params.model_validate(spec["params"])
        self.tasks = build_tasks(self.params.tasks)
        # versions registered before text and feature inputs carry no inputs artifact (pixels need none)
        inputs = Path(context.artifacts.get(INPUTS, "."))
        self.encoder = load_encoder(self.params, inputs)
        self.network = build_model(self.params, self.tasks, inputs)
        self.network.load_state_dict(torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One column per requested task (``params={"tasks": [...]}``, default all); the
        backbone runs once per batch for all of them, the other heads not at all."""
        names = requested_tasks(params, list(self.tasks))
        predictions = self._predict(model_input, names)
        return pd.DataFrame(
            {name: self.tasks[name].answers(predictions[name], model_input, self.encoder) for name in names},
            index=model_input.index,
        )

    def score(self, frame: pd.DataFrame) -> dict[str, float]:
        """Primary metric per task on labeled rows, through this model's own encoder and weights."""
        predictions = self._predict(frame, list(self.tasks))
        return {
            name: task.score(predictions[name], task.targets(frame, self.encoder))[task.metric_name]
            for name, task in self.tasks.items()
        }

    def _predict(self, frame: pd.DataFrame, names: list[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            outputs = self.network(self.encoder.encode(frame), names)
        return {name: self.tasks[name].predict(self.network.heads[name], outputs[name]) for name in names}


def requested_tasks(params: dict[str, Any] | None, valid: list[str]) -> list[str]:
    """The tasks a request asks for (all by default); an unknown one is a client error."""
    requested = (params or {}).get("tasks") or valid
    if isinstance(requested, str):
        requested = [requested]
    unknown = [name for name in requested if name not in valid]
    if unknown:
        raise MlflowException(
            f"unknown task(s) {', '.join(map(str, unknown))}; valid: {', '.join(valid)}", INVALID_PARAMETER_VALUE
        )
    return list(dict.fromkeys(requested))

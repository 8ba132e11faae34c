"""The MLflow pyfunc wrapper: a DataFrame of inputs (pixels, text, word lists, text pairs or
features) in, one column per requested task out: a class, a value, a list of 0/1 labels,
a list of tags (one per word), an answer text ("" for none) or a flat mask per row.
With several datasets a ``dataset`` column says which input each row carries; a task
answers only on its own dataset's rows (None elsewhere).

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
from components.data import targets_tensor
from components.inputs import DatasetsEncoder, load_encoder
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
        predictions = self._predict(model_input, names)
        return pd.DataFrame(
            {name: self._answers(name, predictions[name], model_input) for name in names}, index=model_input.index
        )

    def score(self, frame: pd.DataFrame) -> dict[str, float]:
        """Primary metric per task on labeled rows, through this model's own encoder and weights."""
        predictions = self._predict(frame, list(self.tasks))
        return {
            name: task.score(predictions[name], targets_tensor(frame, task.config, self.encoder))[task.metric_name]
            for name, task in self.tasks.items()
        }

    def _predict(self, frame: pd.DataFrame, names: list[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            outputs = self.network(self.encoder.encode(frame), names)
        return {name: self.tasks[name].predict(self.network.heads[name], outputs[name]) for name in names}

    def _answers(self, name: str, prediction: torch.Tensor, frame: pd.DataFrame) -> list:
        config = self.tasks[name].config
        rows = list(range(len(frame)))
        encoder = self.encoder
        if isinstance(encoder, DatasetsEncoder):  # a task answers on its own dataset's rows
            encoder, rows = encoder.encoders[config.dataset], encoder.rows_of(frame)[config.dataset].tolist()
        answers: list = [None] * len(frame)
        own = frame.iloc[rows]
        if config.type == "tagging":
            for row, positions in zip(rows, encoder.first_subwords(own)):
                answers[row] = [config.tags[i] for i in prediction[row, positions].tolist()]
        elif config.type == "span":
            for row, text in zip(rows, encoder.answer_texts(own, prediction[rows])):
                answers[row] = text
        else:
            # a class or value per row; multilabel a list of 0/1, segmentation a flat mask
            values = prediction.reshape(len(frame), -1) if prediction.ndim > 1 else prediction
            for row in rows:
                answers[row] = values[row].tolist()
        return answers


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

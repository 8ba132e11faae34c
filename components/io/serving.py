"""The MLflow pyfunc wrapper: a DataFrame of inputs (pixels or image paths, or an
``image_base64`` column of PNG files; text, word lists, text pairs or features) in, one column per requested
task out: a class, a value, a list of 0/1 labels, a list of tags (one per word), an answer
text ("" for none), a flat mask or a flat depth map per row.
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
    >>> requested_tasks({"tasks": []}, ["left", "right", "sum"])
    Traceback (most recent call last):
    ...
    components.io.serving.RequestRefused: params.tasks is empty: name at least one of left, right, sum, ...task
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from pandera.errors import SchemaErrors

from components.config import Params, upgrade_stored
from components.data.encoders import PIXEL_PREFIX, fitted_features, load_encoder, pixel_columns
from components.data.images import ENCODED_IMAGE_COLUMN, UnreadableImages, image_bytes
from components.io.feature_cache import FeatureCache
from components.models.added import build_with_added
from components.tasks import build_tasks
from components.validation.schema import request_schema

WEIGHTS = "weights"
SPEC = "spec"
INPUTS = "inputs"


def write_model_files(
    checkpoint: dict[str, Any],
    params: Params,
    directory: Path,
    fitted_inputs: Path,
    added: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Weights-only state dict, the parameters that rebuild the network, and what the input
    encoder fitted on the training split (``fitted_inputs``: tokenizer, feature statistics,
    a pretrained encoder's config), as pyfunc artifacts. ``added``: the tasks ``mtl add-task``
    put on a trained network (``components.models.added.build_with_added``)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights, spec, inputs = directory / "weights.pt", directory / "spec.json", directory / "inputs"
    torch.save(checkpoint["model"], weights)
    spec.write_text(json.dumps({"params": params.model_dump(mode="json"), "added": added or {}}, indent=2))
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
        self.params = Params.model_validate(upgrade_stored(spec["params"]))
        self.tasks = build_tasks(self.params.tasks)
        # versions registered before text and feature inputs carry no inputs artifact (pixels need none)
        inputs = Path(context.artifacts.get(INPUTS, "."))
        self.inputs_dir = inputs  # what the encoder was fitted to: `mtl add-task` ships it again
        self.encoder = load_encoder(self.params, inputs)
        features = fitted_features(self.params, inputs)
        self.added = spec.get("added", {})  # tasks `mtl add-task` put on a trained network
        self.network = build_with_added(self.params, self.tasks, self.added, inputs, features)
        self.network.load_state_dict(torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()
        self.request_schema = request_schema(self.params)
        megabytes = self.params.serving.feature_cache_mb
        self.feature_cache = FeatureCache(int(megabytes * 2**20)) if megabytes else None

    def cache_stats(self) -> dict[str, int] | None:
        """The feature cache's hit and miss counts (rows) and size; None when it is off."""
        return self.feature_cache.stats() if self.feature_cache is not None else None

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One column per requested task (``params={"tasks": [...]}``, default all); the
        backbone runs once per chunk of rows for all of them, the other heads not at all.
        A request outside the input contract is refused before the model runs."""
        names = requested_tasks(params, list(self.tasks))
        limits = self.params.serving
        spec = self.params.data.input
        if ENCODED_IMAGE_COLUMN in model_input.columns and spec.kind == "pixels":
            model_input = images_as_pixels(model_input, self.params.data.canvas_size, limits.max_batch_rows)
        if spec.kind == "image":
            check_image_source(model_input, spec.columns[0], limits.image_paths)
        check_request(model_input, self.request_schema, limits.max_batch_rows)
        try:
            answers = [
                self._answer(model_input.iloc[start : start + limits.chunk_rows], names)
                for start in range(0, len(model_input), limits.chunk_rows)
            ]
        except UnreadableImages as error:
            raise RequestRefused(f"request refused: {error}") from None
        if not answers:
            return pd.DataFrame(columns=names, index=model_input.index)
        return pd.concat(answers)

    def _answer(self, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        predictions = self._predict(frame, names, cached=True)
        for name, values in predictions.items():
            if values.is_floating_point() and not bool(torch.isfinite(values).all()):
                raise RequestRefused(
                    f"task {name!r} produced a non-finite value on valid input; the model is faulty, "
                    "roll back to the previous champion",
                    status=500,
                )
        return pd.DataFrame(
            {name: self.tasks[name].answers(predictions[name], frame, self.encoder) for name in names},
            index=frame.index,
        )

    def score(self, frame: pd.DataFrame) -> dict[str, float]:
        """Primary metric per task on labeled rows, through this model's own encoder and weights."""
        predictions = self._predict(frame, list(self.tasks))
        return {
            name: task.score(predictions[name], task.targets(frame, self.encoder))[task.metric_name]
            for name, task in self.tasks.items()
        }

    def row_statistics(self, frame: pd.DataFrame) -> dict[str, torch.Tensor | None]:
        """Each task's per-row statistics of its primary metric on ``frame``
        (``Task.row_statistics``): what a paired bootstrap against another model resamples."""
        predictions = self._predict(frame, list(self.tasks))
        return {
            name: task.row_statistics(predictions[name], task.targets(frame, self.encoder))
            for name, task in self.tasks.items()
        }

    def predictions(self, frame: pd.DataFrame, names: list[str]) -> dict[str, torch.Tensor]:
        """Each of ``names``' predictions for every row of ``frame``, as the task computes them."""
        return self._predict(frame, names)

    def task_features(self, frame: pd.DataFrame, task: str) -> torch.Tensor:
        """What this network's trunk gives ``task`` for every row of ``frame`` (the input of
        its head), ``serving.chunk_rows`` rows at a time."""
        step = self.params.serving.chunk_rows
        with torch.no_grad():
            chunks = [
                self.network.task_features(self.encoder.encode(frame.iloc[start : start + step]), [task])[task]
                for start in range(0, len(frame), step)
            ]
        return torch.cat(chunks)

    def _predict(self, frame: pd.DataFrame, names: list[str], cached: bool = False) -> dict[str, torch.Tensor]:
        """Each task's predictions; ``cached``: backbone features through the feature cache
        (requests only: scoring and health checks always run the backbone)."""
        with torch.no_grad():
            inputs = self.encoder.encode(frame)
            if cached and self.feature_cache is not None:
                features = self.feature_cache.features(self.network, inputs)
                outputs = {name: self.network.heads[name](features[name]) for name in names}
            else:
                outputs = self.network(inputs, names)
        return {name: self.tasks[name].predict(self.network.heads[name], outputs[name]) for name in names}


class RequestRefused(MlflowException):
    """A request the model will not answer, with its HTTP status (400, 413, or 500 for a
    fault of the model). The message names columns, rules and row positions, never values:
    MLflow's scoring server prefixes an error's message with the whole request
    (``Failed to predict data '...'``), which this class ignores, so no payload is echoed."""

    def __init__(self, message: str, status: int = 400) -> None:
        self._reason = message
        self.status = status
        super().__init__(message, INVALID_PARAMETER_VALUE if status < 500 else INTERNAL_ERROR)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:
        pass  # the scoring server's rewrite with the request's data

    def get_http_status_code(self) -> int:
        """The status the scoring server answers with."""
        return self.status


def check_image_source(frame: pd.DataFrame, column: str, paths_allowed: bool, shown: int = 5) -> None:
    """An image request sends base64 files, or (``serving.image_paths``) paths inside the
    server's working directory; anything else is refused before a file is opened."""
    if ENCODED_IMAGE_COLUMN in frame.columns:
        return
    if not paths_allowed or column not in frame.columns:
        how = f" or as a path in column {column}" if paths_allowed else " (serving.image_paths is false: no paths)"
        raise RequestRefused(
            f"request refused: send each image as a base64 PNG or JPEG file in column {ENCODED_IMAGE_COLUMN}{how}"
        )
    here = Path.cwd().resolve()
    outside = [
        str(label) for label, path in frame[column].items() if not (here / str(path)).resolve().is_relative_to(here)
    ]
    if outside:
        rows = ", ".join(outside[:shown])
        raise RequestRefused(f"request refused: column {column}: rows {rows} name files outside the server's directory")


def images_as_pixels(frame: pd.DataFrame, canvas_size: int, max_rows: int, shown: int = 5) -> pd.DataFrame:
    """``frame`` with its ``image_base64`` column (PNG or JPEG files as base64 text, or bytes)
    decoded into the ``px_`` columns training read: greyscale, ``canvas_size`` square. A
    cell that is no image, or an image of another size, is refused by row position."""
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    if len(frame) > max_rows:  # refused by check_request before any decoding
        return frame
    pixels, unreadable, sized = [], [], []
    for position, cell in enumerate(frame[ENCODED_IMAGE_COLUMN]):
        try:
            image = Image.open(io.BytesIO(image_bytes(cell)))
            image.load()
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
            unreadable.append(position)
            continue
        if image.size != (canvas_size, canvas_size):
            sized.append(f"{position} ({image.size[0]}x{image.size[1]})")
            continue
        pixels.append(np.asarray(image.convert("L"), dtype=np.float64).reshape(-1))
    reasons = []
    if unreadable:
        rows = ", ".join(map(str, unreadable[:shown]))
        reasons.append(f"column {ENCODED_IMAGE_COLUMN}: rows {rows} are not base64 PNG or JPEG images")
    if sized:
        rows = ", ".join(sized[:shown])
        reasons.append(
            f"column {ENCODED_IMAGE_COLUMN}: rows {rows} are not {canvas_size}x{canvas_size} (data.canvas_size)"
        )
    if reasons:
        raise RequestRefused(f"request refused: {'; '.join(reasons)}")
    decoded = pd.DataFrame(np.stack(pixels) if pixels else None, columns=pixel_columns(canvas_size), index=frame.index)
    return pd.concat([frame.drop(columns=ENCODED_IMAGE_COLUMN), decoded], axis=1)


def check_request(frame: pd.DataFrame, schema: pa.DataFrameSchema, max_rows: int) -> None:
    """Refuses a request over ``max_rows`` (413), or outside the training data's input rules
    (``request_schema``; 400): each failing column with its rule and first failing rows."""
    if len(frame) > max_rows:
        raise RequestRefused(
            f"{len(frame)} rows is over this model's limit of {max_rows} per request "
            "(serving.max_batch_rows); send them in smaller batches",
            status=413,
        )
    pixels = _pixel_refusals(frame, [n for n in schema.columns if str(n).startswith(PIXEL_PREFIX)])
    if pixels:
        raise RequestRefused(f"request refused: {'; '.join(pixels)}")
    remaining = _numeric_columns_pass(frame, schema)
    if remaining is not None and not remaining:
        return
    try:
        (schema if remaining is None else schema.select_columns(remaining)).validate(frame, lazy=True)
    except SchemaErrors as error:
        raise RequestRefused(f"request refused: {'; '.join(_refusals(error.failure_cases, frame))}") from None


def _pixel_refusals(frame: pd.DataFrame, names: list[str], shown: int = 5) -> list[str]:
    """Pixels that are booleans or fractions: training reads whole numbers from 0 to 255, and
    a float schema would take ``true`` as 1 and 0.5 as it is. Only rows and columns are
    named, never a request's values. Checked as one array: a pandera check per column costs
    ~0.3 ms each, 0.4 s for one image's pixels."""
    present = [n for n in names if n in frame.columns]
    if not present:
        return []
    block = frame[present]
    booleans = [n for n in present if pd.api.types.is_bool_dtype(block[n])]
    mixed = [n for n in present if block[n].dtype == object]
    booleans += [n for n in mixed if block[n].map(lambda v: isinstance(v, (bool, np.bool_))).any()]
    reasons = [f"column {n}: a boolean where a pixel belongs (a whole number from 0 to 255)" for n in booleans[:shown]]
    numeric = [n for n in present if n not in booleans and pd.api.types.is_numeric_dtype(block[n])]
    if numeric:
        values = block[numeric].to_numpy(dtype=np.float64)
        fractional = np.isfinite(values) & (values != np.floor(values))
        for column in np.flatnonzero(fractional.any(axis=0))[: max(0, shown - len(reasons))]:
            rows = np.flatnonzero(fractional[:, column])
            listed = ", ".join(map(str, rows[:shown])) + (" …" if len(rows) > shown else "")
            reasons.append(f"column {numeric[column]}: rule whole_number failed on {len(rows)} row(s) at rows {listed}")
    return reasons


def _numeric_columns_pass(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[str] | None:
    """The schema's number columns (an image's pixels) checked as one array in one pass: the
    columns left for pandera when they all pass, else None (pandera checks everything, to
    say what failed). pandera alone costs ~0.3 ms per column per request: 0.44 s for the
    1,296 pixels of one image, whatever the rows."""
    ranges: dict[tuple[float, float], list[str]] = {}
    others = []
    for name, column in schema.columns.items():
        checks = {check.name: check.statistics for check in column.checks}
        if str(column.dtype) != "float64" or column.nullable or not set(checks) <= {"in_range", "finite"}:
            others.append(name)
            continue
        bounds = checks.get("in_range", {})
        if not bounds.get("include_min", True) or not bounds.get("include_max", True):
            others.append(name)
            continue
        ranges.setdefault((bounds.get("min_value", -math.inf), bounds.get("max_value", math.inf)), []).append(name)
    for (low, high), names in ranges.items():
        if not set(names) <= set(frame.columns):
            return None
        try:
            values = frame[names].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if not (np.isfinite(values).all() and (values >= low).all() and (values <= high).all()):
            return None
    return others


def _refusals(cases: pd.DataFrame, frame: pd.DataFrame, shown: int = 5) -> list[str]:
    reasons = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        if check == "column_in_dataframe":
            reasons.append(f"column {group['failure_case'].iloc[0]} is missing")
            continue
        failing = group["index"].dropna().unique()
        rows = [str(frame.index.get_loc(i)) for i in failing[:shown]]
        where = f" at rows {', '.join(rows)}{' …' if len(failing) > shown else ''}" if rows else ""
        reasons.append(f"column {column}: rule {check} failed on {len(failing) or len(group)} row(s){where}")
    return reasons[:shown] + ([f"and {len(reasons) - shown} more"] if len(reasons) > shown else [])


def requested_tasks(params: dict[str, Any] | None, valid: list[str]) -> list[str]:
    """The tasks a request asks for (all when it names none); an unknown one, or an empty
    list, is a client error: ``tasks: []`` asks for nothing, not for everything."""
    raw = (params or {}).get("tasks")
    if raw is None:
        return list(valid)
    requested = [raw] if isinstance(raw, str) else raw
    if not isinstance(requested, list) or not all(isinstance(name, str) for name in requested):
        raise RequestRefused(f"params.tasks must be a task name or a list of them; valid: {', '.join(valid)}")
    if not requested:
        raise RequestRefused(
            f"params.tasks is empty: name at least one of {', '.join(valid)}, or leave tasks out for every task"
        )
    unknown = [name for name in requested if name not in valid]
    if unknown:  # a RequestRefused: the scoring server's rewrite would quote the request's rows
        raise RequestRefused(f"unknown task(s) {', '.join(unknown)[:200]}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(requested))

"""The ``Task`` contract: everything one task type decides, from its config keys to the
answer a served model gives.

A task type is one file in this package holding one ``Task`` subclass. The class owns:

- its **config rules** (:meth:`Task.check_config`, :meth:`Task.check_fits`): which keys it
  takes and what they must hold, which input it reads;
- its **validation rules**: the pandera columns and row checks of its labels
  (:meth:`Task.schema`), and the GX expectations on their distribution
  (:meth:`Task.expectations`);
- how labels become **targets** (:meth:`Task.targets`), missing labels included;
- its **head**, **loss**, **metrics** and primary metric, and the prediction of a model
  that ignores its input (:meth:`Task.trivial_prediction`), the level its metric must beat;
- how a prediction becomes a **served answer** (:meth:`Task.answers`).

A row may lack the label of some tasks (``MISSING_CLASS`` for classes, NaN for values,
``IGNORE`` positions for dense targets): that task's loss and metric skip the row, nothing
is imputed, and a batch with no label for a task contributes a zero loss for it.

Example::

    >>> from components.config import TaskConfig
    >>> from components.tasks import build_task
    >>> task = build_task("left", TaskConfig(type="classification", label="left", num_classes=10))
    >>> task.metric_name, task.higher_is_better
    ('accuracy', True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from torch import Tensor, nn

from components.config import InputConfig, Params, TaskConfig
from components.data.encoders import DatasetsEncoder, InputEncoder

if TYPE_CHECKING:
    import pandera.pandas as pa
    import torchmetrics

MISSING_CLASS = -1


@dataclass
class LabelSchema:
    """What pandera checks of one task's labels: columns by name, and row-level checks with
    the columns each reads (so a failure report shows just those)."""

    columns: dict[str, pa.Column] = field(default_factory=dict)
    row_checks: list[tuple[pa.Check, list[str]]] = field(default_factory=list)


class Task(ABC):
    """One prediction target: its rules, targets, head, loss, metrics and answers."""

    #: the ``type`` value in params.yaml
    type_name: ClassVar[str]
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: reads per-token or per-pixel features instead of the pooled vector
    dense: ClassVar[bool] = False
    #: what one served answer is, in words, for the model card (``describe_answer`` fills in
    #: the config's values); a type of your own may say more
    answer_description: ClassVar[str] = "one answer per row"
    #: the input kinds this task's labels refer to (e.g. ``tokens`` for tagging); None: any
    reads_input: ClassVar[tuple[str, ...] | None] = None
    #: on image input, what the label column's files are (``mask``, ``depth``): ``prepare``
    #: decodes them beside their image (``components.data.images``); None: labels as they are
    label_files: ClassVar[str | None] = None
    #: how many label columns the type takes; 1 means ``label`` is one column name
    label_count: ClassVar[int | None] = 1
    #: type-specific keys it takes among ``num_classes``, ``classes``, ``tags``, ``loss``,
    #: ``min_class_share``, ``max_class_share``, ``max_objects``
    keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: TaskConfig) -> None:
        self.name = name
        self.config = config

    # --- typed views of the config keys the type's rules guarantee ----------------------

    @property
    def column(self) -> str:
        """The one label column (types with ``label_count == 1``)."""
        assert isinstance(self.config.label, str), "check_config guarantees one column"
        return self.config.label

    @property
    def columns(self) -> list[str]:
        """The label columns (types that take several)."""
        return self.config.label_columns

    @property
    def num_classes(self) -> int:
        """``num_classes`` (types whose ``keys`` include it)."""
        assert self.config.num_classes is not None, "check_config guarantees num_classes"
        return self.config.num_classes

    @property
    def tags(self) -> list[str]:
        """``tags`` (types whose ``keys`` include it)."""
        assert self.config.tags is not None, "check_config guarantees tags"
        return self.config.tags

    def describe_answer(self) -> str:
        """:attr:`answer_description` with this task's classes, labels and tags filled in."""
        return self.answer_description.format(
            num_classes_minus_one=(self.config.num_classes or 1) - 1,
            labels=", ".join(f"`{column}`" for column in self.config.label_columns),
            tags=", ".join(self.config.tags or []),
        )

    # --- config rules -------------------------------------------------------------------

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        """Raises ``ValueError`` when ``config`` does not fit this type; subclasses add rules."""
        given = {
            "num_classes": config.num_classes is not None,
            "classes": config.classes is not None,
            "min_class_share": config.min_class_share is not None,
            "max_class_share": config.max_class_share is not None,
            "tags": config.tags is not None,
            "loss": config.loss != "mse",
            "max_objects": config.max_objects is not None,
        }
        for key, is_given in given.items():
            if is_given and key not in cls.keys:
                raise ValueError(f"a {cls.type_name} task takes no {key}")
        if cls.label_count == 1 and not isinstance(config.label, str):
            raise ValueError(f"a {cls.type_name} task takes one label column")
        if cls.label_count != 1 and isinstance(config.label, str):
            raise ValueError(f"a {cls.type_name} task takes a list of label columns")

    @classmethod
    def check_fits(cls, name: str, params: Params) -> None:
        """Rules that involve the rest of ``params``: by default, the input the task reads."""
        kind = params.task_input(name).kind
        if cls.reads_input is not None and kind not in cls.reads_input:
            raise ValueError(f"a {cls.type_name} task reads {' or '.join(cls.reads_input)} input, not {kind}")

    # --- validation ---------------------------------------------------------------------

    def label_ids(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with this task's labels as the ids training reads (``prepare`` calls it on
        every split); unchanged by default. Raises ``ValueError`` naming values it cannot read."""
        return frame

    @abstractmethod
    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        """pandera rules of this task's label columns; labels may be missing, values must be
        valid. ``spec`` is the input of the task's dataset."""

    def required_label_columns(self) -> list[str]:
        """The label columns a labeled row fills (checked for nulls by GX)."""
        return self.config.label_columns

    def expectations(self, min_share: float, max_share: float, where: dict[str, Any]) -> list[Any]:
        """GX expectations on the label distribution of a split (none by default)."""
        return []

    def shift_expectations(
        self, reference: pd.DataFrame, rows: int, max_divergence: float, where: dict[str, Any]
    ) -> list[Any]:
        """GX expectations that a split of ``rows`` rows has its labels distributed like
        ``reference``'s (the training split's rows of this task's dataset), within
        ``max_divergence`` beyond sampling noise; none by default."""
        return []

    def coverage_warnings(self, frames: dict[str, pd.DataFrame]) -> list[str]:
        """Warnings on label values some split lacks (``frames`` by split, labels as ids);
        none by default."""
        return []

    # --- targets ------------------------------------------------------------------------

    @abstractmethod
    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        """Labels of ``frame`` as a tensor; a missing label becomes ``MISSING_CLASS``, NaN or
        ignored positions, never a guess."""

    def on_own_rows(
        self, frame: pd.DataFrame, encoder: InputEncoder, build: Callable[[InputEncoder, pd.DataFrame], Tensor]
    ) -> Tensor:
        """``build`` with the encoder of this task's dataset (targets aligned with tokens)."""
        if isinstance(encoder, DatasetsEncoder):
            assert self.config.dataset is not None, "with several datasets every task names its own"
            return encoder.per_dataset(frame, self.config.dataset, build)
        return build(encoder, frame)

    def as_moving_map(self, target: Tensor) -> Tensor | None:
        """Targets that must move with the image under augmentation (a mask, a depth map), as
        a (rows, 1, H, W) float map in which 0 means "no label" (what a shift brings in);
        None for targets a change of the image leaves alone (a class, a value)."""
        return None

    def from_moving_map(self, moved: Tensor) -> Tensor:
        """:meth:`as_moving_map` undone on the moved map."""
        raise NotImplementedError(f"{type(self).__name__} has no per-pixel targets")

    # --- model --------------------------------------------------------------------------

    @abstractmethod
    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        """The task's head on features of width ``in_features`` (channels for a feature
        map); ``image_size`` is the side of an input image, for heads that upsample."""

    def prepare_head(self, head: nn.Module, train_targets: Tensor) -> None:  # noqa: B027 - an optional hook
        """Fits anything the head needs from the training targets before training starts."""

    @abstractmethod
    def labeled(self, target: Tensor) -> Tensor:
        """Boolean mask of the rows that carry a label for this task."""

    @abstractmethod
    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        """The loss over rows that all carry a label."""

    def loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        """The loss over the labeled rows; zero (with a graph) when none is labeled."""
        mask = self.labeled(target)
        if not mask.any():
            return output.sum() * 0.0  # keeps the graph, contributes nothing
        return self.labeled_loss(head, output[mask], target[mask])

    @abstractmethod
    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        """The prediction the metrics and answers read, from the head's output."""

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """What a model that ignores its input predicts for ``rows`` rows, fitted on the
        training targets (the majority class, the median): the level a head must beat to
        have learned anything. None where no constant answer makes sense."""
        return None

    # --- metrics ------------------------------------------------------------------------

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """Per-row sufficient statistics of the primary metric, (rows, k), zero on rows
        without a label, such that :meth:`metric_from_statistics` of any weighted sum of
        rows is the metric of the rows so weighted: what a paired bootstrap resamples.
        None where the metric does not decompose over rows (entity F1, span scores)."""
        return None

    def metric_from_statistics(self, sums: Tensor) -> Tensor:
        """The primary metric from summed :meth:`row_statistics` (..., k) -> (...)."""
        raise NotImplementedError(f"{type(self).__name__} has no row statistics")

    def resampled_metric(self, statistics: Tensor, counts: Tensor) -> Tensor:
        """The primary metric of each resample, (samples,), from the rows' statistics and
        how often each resample draws each row, (samples, rows): by default one matrix
        product of summed statistics. A metric that does not decompose over rows (AUROC)
        computes it from the weights instead."""
        return self.metric_from_statistics(counts @ statistics.float())

    @abstractmethod
    def metrics(self) -> dict[str, torchmetrics.Metric]:
        """Fresh metrics updated with ``(prediction, target)``; the primary one under ``metric_name``."""

    def metric_target(self, target: Tensor) -> Tensor:
        """The labeled targets in the form the metrics expect."""
        return target

    def update_metrics(self, metrics: dict[str, torchmetrics.Metric], prediction: Tensor, target: Tensor) -> None:
        """Feeds the rows labeled for this task to every metric."""
        labeled = self.labeled(target)
        if not labeled.any():  # e.g. a batch of another dataset's rows
            return
        for metric in metrics.values():
            metric.update(prediction[labeled], self.metric_target(target[labeled]))

    def score(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        """Every metric of ``prediction`` (as :meth:`predict` returns it) against ``target``."""
        metrics = self.metrics()
        self.update_metrics(metrics, prediction, target)
        return {key: float(metric.compute()) for key, metric in metrics.items()}

    # --- serving ------------------------------------------------------------------------

    def answers(self, prediction: Tensor, frame: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        """One served answer per row of ``frame``; None on rows of other datasets."""
        rows, own_encoder = list(range(len(frame))), encoder
        if isinstance(encoder, DatasetsEncoder):  # a task answers on its own dataset's rows
            dataset = str(self.config.dataset)
            own_encoder, rows = encoder.encoders[dataset], encoder.rows_of(frame)[dataset].tolist()
        answers: list[Any] = [None] * len(frame)
        for row, answer in zip(rows, self.row_answers(prediction, rows, frame.iloc[rows], own_encoder)):
            answers[row] = answer
        return answers

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        """Answers of ``rows`` (this task's rows of the request, ``own``): by default the
        prediction as JSON values (a class, a value, or a list)."""
        values = prediction.reshape(len(prediction), -1) if prediction.ndim > 1 else prediction
        return [values[row].tolist() for row in rows]


def is_list(value: object) -> bool:
    """A cell holding a list of values (Parquet gives arrays)."""
    return isinstance(value, (list, tuple, np.ndarray))


def finite_check() -> pa.Check:
    """pandera: every present value is a finite number."""
    import pandera.pandas as pa

    return pa.Check(lambda s: np.isfinite(s), name="finite")

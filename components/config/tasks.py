"""``tasks.<name>``: one task's label, type and acceptance tolerance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.base import Strict


class TaskConfig(Strict):
    """One task. Which keys apply, and what they must hold, is the task type's rule
    (``components/tasks/<type>.py``, checked by ``components.tasks.check_tasks`` when a job
    loads its parameters; this model checks structure only, so that config stays below the
    task types, which import torch)."""

    type: str
    """A registered task type: classification, binary, multilabel, regression, tagging, span, segmentation,
    depth, detection, or one you add (docs/tasks.md, "Add your own task type")."""
    label: str | list[str]
    """The label column. multilabel: one 0/1 column per label; tagging: a column of tag lists (one per word); span:
    [answer start column, answer text column]; segmentation: a column of flat masks (one class id per pixel); depth: a
    column of flat depth maps (one distance per pixel, NaN or 0 where there is no reading);
    detection: [boxes column (a flat list of x1, y1, x2, y2 per object, in pixels), classes column]."""
    num_classes: Annotated[int, Field(ge=2)] | None = None
    """classification and segmentation: the number of classes (detection: of object classes)."""
    classes: list[str] | None = None
    """classification with labels as names (e.g. [setosa, versicolor, virginica]): the label column holds these
    values, read as ids 0.. in this order; answers come back as names. binary: [negative, positive]."""
    other_class: str | None = None
    """classification with classes: the class (one of classes, e.g. other) that a label value not among classes
    counts as; mtl init folds classes too rare to reach every split into it. None: such a value is an error."""
    tags: list[str] | None = None
    """tagging: the BIO tag set, e.g. [O, B-PER, I-PER]."""
    ignore_index: int = 255
    """segmentation: the mask value of pixels that carry no label."""
    max_objects: Annotated[int, Field(ge=1, le=20)] | None = None
    """detection: the most objects an image holds (the head predicts this many)"""
    dataset: str | None = None
    """With data.datasets: the dataset whose rows carry this task's labels."""
    loss: Literal["mse", "l1"] = "mse"
    """Regression loss: mse or l1 (the metric is MAE either way)."""
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    """Share of rows whose label may be missing (masked in training); default validation.max_null_fraction. Input
    columns keep that global limit."""
    min_class_share: Annotated[float, Field(ge=0, le=1)] | None = None
    """classification: bounds on each class's share of a split for this task; default validation.min_class_share /
    max_class_share (a 2-class task is rarely within 4-20 %)."""
    max_class_share: Annotated[float, Field(ge=0, le=1)] | None = None
    """classification: the largest share a class may hold of a split; default validation.max_class_share."""
    max_relative_regression: Annotated[float, Field(ge=0)] = 0.02
    """Relative regression tolerated against the single-task baseline (0.02 = 2 %)."""
    selection_weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of this task's relative change in the checkpoint-selection score."""
    lr_scale: Annotated[float, Field(gt=0)] = 1.0
    """Multiplies training.lr for this task's head."""

    @property
    def label_columns(self) -> list[str]:
        """The label column(s), always as a list."""
        return [self.label] if isinstance(self.label, str) else list(self.label)

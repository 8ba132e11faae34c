"""Task types: one file each, registered here by their ``type`` name.

================== ====================================== ==================================
type               loss                                   primary metric (others)
================== ====================================== ==================================
``classification`` cross-entropy                          accuracy (macro-F1)
``binary``         binary cross-entropy on one logit      AUROC (accuracy, log-loss)
``multilabel``     binary cross-entropy                   micro-F1 (macro-F1)
``regression``     MSE or L1 on the standardised target   MAE
``tagging``        token cross-entropy, padding masked    seqeval entity F1 on BIO tags
                                                          (token accuracy)
``span``           start/end cross-entropy                SQuAD F1 (exact match)
``segmentation``   pixel cross-entropy, ignore index      mIoU (pixel accuracy)
``depth``          L1 on valid pixels (standardised)      abs-rel (RMSE, δ < 1.25)
``detection``      Hungarian-matched L1 box + class CE    COCO mAP@[.5:.95] (mAP@.5)
================== ====================================== ==================================

Adding a type is one file with a :class:`~components.tasks.base.Task` subclass and one
:func:`register_task_type` call (docs/tasks.md, "Add your own task type"). The classes are
importable from here too: versions registered before this package existed pickled them
as ``components.tasks.<Class>``.

Example::

    >>> sorted(TASK_TYPES)[:3]
    ['binary', 'classification', 'depth']
"""

from __future__ import annotations

import importlib

from torch import nn

from components.config import Params, ParamsError, TaskConfig
from components.objectives import Objective
from components.tasks.base import MISSING_CLASS, Task
from components.tasks.binary import BinaryTask
from components.tasks.classification import ClassificationTask
from components.tasks.depth import DepthHead, DepthTask
from components.tasks.detection import DetectionHead, DetectionTask
from components.tasks.multilabel import MultilabelTask
from components.tasks.regression import RegressionTask, StandardizedRegressionHead
from components.tasks.segmentation import SegmentationHead, SegmentationTask
from components.tasks.span import SpanTask
from components.tasks.tagging import TaggingTask

#: the metric classes, imported on first use (they import torchmetrics, seconds of start-up)
LAZY_METRICS = {
    "COCOMeanAveragePrecision": "components.tasks.detection_map",
    "SQuADSpanScore": "components.tasks.span_score",
    "SeqevalScore": "components.tasks.tagging_score",
}


def __getattr__(name: str) -> object:
    """``components.tasks.<metric class>``, where older pickles look for it."""
    if name in LAZY_METRICS:
        return getattr(importlib.import_module(LAZY_METRICS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TASK_TYPES: dict[str, type[Task]] = {}


def register_task_type(task_class: type[Task]) -> type[Task]:
    """Makes ``task_class`` available as ``type: <task_class.type_name>`` in params.yaml."""
    TASK_TYPES[task_class.type_name] = task_class
    return task_class


for _builtin in (
    ClassificationTask,
    MultilabelTask,
    RegressionTask,
    TaggingTask,
    SpanTask,
    SegmentationTask,
    DetectionTask,
    BinaryTask,
    DepthTask,
):
    register_task_type(_builtin)


def task_type(name: str, config: TaskConfig) -> type[Task]:
    """The registered class of ``config.type``; an unknown type lists the valid ones."""
    try:
        return TASK_TYPES[config.type]
    except KeyError:
        raise ValueError(f"task {name!r}: unknown type {config.type!r}; valid: {', '.join(TASK_TYPES)}") from None


def build_task(name: str, config: TaskConfig) -> Task:
    """The task ``name`` configured by ``config``, after its type's config rules."""
    cls = task_type(name, config)
    try:
        cls.check_config(config)
    except ValueError as error:
        raise ValueError(f"task {name!r}: {error}") from None
    return cls(name, config)


def build_tasks(configs: dict[str, TaskConfig]) -> dict[str, Task]:
    """Every configured task, in params.yaml order."""
    return {name: build_task(name, config) for name, config in configs.items()}


#: names a task cannot have: the heads live in an ``nn.ModuleDict`` keyed by task name,
#: which refuses keys that shadow its own attributes (``double``, ``train``, ``cuda``, ...)
RESERVED_NAMES = frozenset(name for name in dir(nn.ModuleDict) if not name.startswith("_"))


def check_tasks(params: Params, source: str = "params.yaml") -> None:
    """Every task type's rules on ``params``, as one :class:`ParamsError` listing each broken one."""
    problems = []
    for name, config in params.tasks.items():
        if name in RESERVED_NAMES:
            problems.append(
                f"  tasks.{name}: the name is taken by torch's module API (heads are kept by task name); rename it"
            )
            continue
        try:
            build_task(name, config)
            task_type(name, config).check_fits(name, params)
        except ValueError as error:
            message = str(error).removeprefix(f"task {name!r}: ")
            problems.append(f"  tasks.{name}: {message}")
    if problems:
        raise ParamsError("\n".join([f"{source}: invalid parameters", *problems]))


__all__ = [
    "MISSING_CLASS",
    "TASK_TYPES",
    "COCOMeanAveragePrecision",
    "BinaryTask",
    "ClassificationTask",
    "DepthHead",
    "DepthTask",
    "DetectionHead",
    "DetectionTask",
    "MultilabelTask",
    "RegressionTask",
    "SQuADSpanScore",
    "SegmentationHead",
    "SegmentationTask",
    "SeqevalScore",
    "SpanTask",
    "StandardizedRegressionHead",
    "TaggingTask",
    "Task",
    "build_task",
    "build_tasks",
    "check_tasks",
    "RESERVED_NAMES",
    "register_task_type",
]


def task_objectives(params: Params) -> dict[str, Objective]:
    """Each task's primary metric, direction, tolerance and selection weight."""
    tasks = build_tasks(params.tasks)
    return {
        name: Objective(
            metric=task.metric_name,
            higher_is_better=task.higher_is_better,
            max_relative_regression=params.tasks[name].max_relative_regression,
            weight=params.tasks[name].selection_weight,
        )
        for name, task in tasks.items()
    }

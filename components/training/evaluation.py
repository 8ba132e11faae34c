"""Scoring a network on a split: every metric of every task, over the rows labeled for it.

Example::

    >>> import torch
    >>> from components.config import load_params
    >>> from components.models import build_model
    >>> from components.tasks import build_tasks
    >>> params = load_params("params.yaml")
    >>> tasks = build_tasks(params.tasks)
    >>> split = TensorSplit(torch.zeros(4, 1, 36, 36), {"left": torch.tensor([0, 1, 2, 3]),
    ...                     "right": torch.zeros(4, dtype=torch.long), "sum": torch.full((4,), 3.0)})
    >>> sorted(evaluate(build_model(params, tasks), tasks, split, 2, torch.device("cpu")))
    ['left', 'right', 'sum']
"""

from __future__ import annotations

import torch

from components.models import MultiTaskNetwork
from components.tasks import Task
from components.training.loader import TensorSplit, make_loader


@torch.no_grad()
def evaluate_all(
    model: MultiTaskNetwork,
    tasks: dict[str, Task],
    split: TensorSplit,
    batch_size: int,
    device: torch.device,
) -> dict[str, dict[str, float]]:
    """Every metric of every task in ``tasks`` on ``split``, over the rows labeled for it."""
    model.eval()
    names = list(tasks)
    split = split.for_datasets({task.config.dataset for task in tasks.values()})
    metrics = {name: tasks[name].metrics() for name in names}
    for inputs, *targets in make_loader(split, names, batch_size, shuffle=False, seed=0):
        outputs = model(inputs.to(device), names)
        for name, target in zip(names, targets):
            prediction = tasks[name].predict(model.heads[name], outputs[name]).cpu()
            tasks[name].update_metrics(metrics[name], prediction, target)
    return {
        name: {key: float(metric.compute()) for key, metric in task_metrics.items()}
        for name, task_metrics in metrics.items()
    }


@torch.no_grad()
def predictions(
    model: MultiTaskNetwork,
    tasks: dict[str, Task],
    split: TensorSplit,
    batch_size: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Every row's prediction for each task, in row order (rows of other datasets included:
    their targets mark them unlabeled)."""
    model.eval()
    names = list(tasks)
    found: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for inputs, *_ in make_loader(split, names, batch_size, shuffle=False, seed=0):
        outputs = model(inputs.to(device), names)
        for name in names:
            found[name].append(tasks[name].predict(model.heads[name], outputs[name]).cpu())
    return {name: torch.cat(parts) for name, parts in found.items()}


def primary_metrics(scores: dict[str, dict[str, float]], tasks: dict[str, Task]) -> dict[str, float]:
    """The primary metric of each task out of all its metrics."""
    return {name: scores[name][tasks[name].metric_name] for name in tasks}


def evaluate(
    model: MultiTaskNetwork,
    tasks: dict[str, Task],
    split: TensorSplit,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Primary metric of every task in ``tasks`` on ``split``."""
    return primary_metrics(evaluate_all(model, tasks, split, batch_size, device), tasks)

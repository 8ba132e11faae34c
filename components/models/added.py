"""A task added to a trained network without retraining it (``mtl add-task``).

The new task's head reads the features the network already gives one of its own tasks
(``reads``): the trunk, shared or task-specific, stays frozen, so the old tasks' outputs
are the old network's, bit for bit. An optional residual bottleneck adapter (Houlsby et
al. 2019, "Parameter-Efficient Transfer Learning for NLP") lets the new task bend those
features a little; its up-projection starts at zero, so it starts as the identity.

Example::

    >>> import torch
    >>> from torch import nn
    >>> adapter = ResidualAdapter(width=4, hidden=2)
    >>> x = torch.randn(3, 4)
    >>> torch.equal(adapter(x), x)                        # the identity until it trains
    True
    >>> heads = FeatureHeads({"new": nn.Linear(4, 1)}, {"new": adapter})  # what add-task trains, on cached features
    >>> heads(x)["new"].shape
    torch.Size([3, 1])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from components.config import Params
from components.data.encoders import FittedFeatures
from components.models.build import build_model
from components.models.sharing import MultiTaskNetwork
from components.tasks import Task


class ResidualAdapter(nn.Module):
    """``x + W_up·relu(W_down·x)``, a bottleneck of ``hidden`` units; ``W_up`` starts at zero."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, hidden)
        self.up = nn.Linear(hidden, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, features: Tensor) -> Tensor:
        return features + self.up(self.down(features).relu())


def adapters_for(added: dict[str, dict[str, Any]]) -> dict[str, nn.Module]:
    """The adapter of each added task that has one (``adapter`` units; 0: none), on its
    features rather than around its head, so that the task's own ``predict`` still gets its
    head (a regression head destandardizes)."""
    return {name: ResidualAdapter(e["width"], e["adapter"]) for name, e in added.items() if e["adapter"]}


class FeatureHeads(MultiTaskNetwork):
    """Heads over features computed once by a frozen network, each behind its adapter if it
    has one: the input is those features. The training loop trains it as any network;
    nothing in it is shared."""

    def __init__(self, heads: dict[str, nn.Module], adapters: dict[str, nn.Module]) -> None:
        super().__init__(heads)
        self.adapters = nn.ModuleDict(adapters)

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        return {name: _adapted(self.adapters, name, inputs) for name in tasks}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return _head_and_adapter(self, task)

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return []


class AddedTasksModel(MultiTaskNetwork):
    """``base`` with heads for new tasks, each reading the features ``base`` gives the task
    ``reads`` names, through its adapter if it has one; ``base``'s own tasks run exactly as
    before."""

    def __init__(
        self, base: MultiTaskNetwork, added: dict[str, nn.Module], reads: dict[str, str], adapters: dict[str, nn.Module]
    ) -> None:
        super().__init__({**dict(base.heads.items()), **added}, base.dense_tasks)
        self.base = base
        self.reads = dict(reads)
        self.adapters = nn.ModuleDict(adapters)

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        needed = list(dict.fromkeys(self.reads.get(name, name) for name in tasks))
        features = self.base.task_features(inputs, needed)
        return {name: _adapted(self.adapters, name, features[self.reads.get(name, name)]) for name in tasks}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return _head_and_adapter(self, task) if task in self.reads else self.base.task_parameters(task)

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return self.base.gradnorm_parameters()


def _adapted(adapters: nn.ModuleDict, name: str, features: Tensor) -> Tensor:
    return adapters[name](features) if name in adapters else features


def _head_and_adapter(network: FeatureHeads | AddedTasksModel, task: str) -> list[nn.Parameter]:
    adapter = list(network.adapters[task].parameters()) if task in network.adapters else []
    return list(network.heads[task].parameters()) + adapter


def build_with_added(
    params: Params,
    tasks: dict[str, Task],
    added: dict[str, dict[str, Any]],
    fitted_inputs: Path | None = None,
    features: FittedFeatures | None = None,
) -> MultiTaskNetwork:
    """The network of a registered version: the one ``params`` describe for the tasks not in
    ``added``, and a head (and adapter) for each task in it (``{"reads": task, "width": n,
    "adapter": n}``, what ``mtl add-task`` recorded). Without added tasks, ``build_model``'s
    network, its weights' names unchanged."""
    if not added:
        return build_model(params, tasks, fitted_inputs, features)
    own = {name: task for name, task in tasks.items() if name not in added}
    base_params = params.model_copy(update={"tasks": {name: params.tasks[name] for name in own}})
    base = build_model(base_params, own, fitted_inputs, features)
    heads = {name: tasks[name].head(entry["width"]) for name, entry in added.items()}
    reads = {name: entry["reads"] for name, entry in added.items()}
    return AddedTasksModel(base, heads, reads, adapters_for(added))

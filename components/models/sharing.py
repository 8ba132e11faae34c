"""Sharing strategies: how task heads share the backbone.

============== ============================================================================
``hard``       one shared backbone, one light head per task (Caruana 1997)
``cross_stitch`` one backbone column per task; after every backbone stage a learnable
               cross-stitch unit mixes the columns' activations (Misra et al. 2016);
               stages are the CNN's blocks, the MLP's layers, or a Transformer's
               embedding, encoder layers and pooling
``mmoe``       E expert backbones and one softmax gate per task over the experts
               (Ma et al. 2018, "Modeling Task Relationships in Multi-task Learning with
               Multi-gate Mixture-of-Experts")
============== ============================================================================

Dense tasks (tagging, span, segmentation) read the backbone's dense features, the others
its pooled vector; the backbone runs once for both.

Example::

    >>> unit = CrossStitchUnit(n_tasks=2, self_weight=0.9)
    >>> unit.alpha.tolist()
    [[0.8999999761581421, 0.10000000149011612], [0.10000000149011612, 0.8999999761581421]]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import cast

import torch
from torch import Tensor, nn

from components.models.backbones import Backbone


def _module(backbone: Backbone) -> nn.Module:
    """Every backbone is an ``nn.Module`` as well as a :class:`Backbone`."""
    assert isinstance(backbone, nn.Module)
    return backbone


def _backbone(module: nn.Module) -> Backbone:
    return cast(Backbone, module)


def _weight(layer: nn.Module) -> nn.Parameter:
    weight = layer.weight
    assert isinstance(weight, nn.Parameter)
    return weight


class MultiTaskNetwork(nn.Module, ABC):
    """A trunk that yields features per task, and one head per task.

    Subclasses decide how the trunk is shared; parameters that only one task's loss
    reaches are that task's (its head, its gate), everything else is shared.
    """

    def __init__(self, heads: dict[str, nn.Module], dense_tasks: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.dense_tasks = dense_tasks  # tasks whose heads read dense features

    @abstractmethod
    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Features for each of ``tasks``; how the trunk is shared is the subclass's choice."""

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        specific = {id(p) for task in self.heads for p in self.task_parameters(task)}
        return [p for p in self.parameters() if id(p) not in specific]

    @abstractmethod
    def gradnorm_parameters(self) -> list[nn.Parameter]:
        """The last shared layer, where GradNorm measures per-task gradient norms."""

    def forward(self, inputs: Tensor, tasks: list[str] | None = None) -> dict[str, Tensor]:
        names = tasks or list(self.heads)
        features = self.task_features(inputs, names)
        return {name: self.heads[name](features[name]) for name in names}


def _last_shared_layer(backbone: Backbone, dense_tasks: frozenset[str]) -> nn.Module:
    """The last layer every task's loss reaches: dense tasks bypass the pooling layers."""
    return backbone.dense_last_layer() if dense_tasks else backbone.last_layer()


class HardSharingModel(MultiTaskNetwork):
    """One backbone for every task (Caruana 1997)."""

    def __init__(
        self, backbone: Backbone, heads: dict[str, nn.Module], dense_tasks: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.backbone = backbone

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        dense = self.backbone.encode(inputs)
        if not set(tasks) - self.dense_tasks:
            return {name: dense for name in tasks}
        pooled = self.backbone.pool(dense, inputs)
        return {name: dense if name in self.dense_tasks else pooled for name in tasks}

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [_weight(_last_shared_layer(self.backbone, self.dense_tasks))]


class CrossStitchUnit(nn.Module):
    """x'_i = Σ_j α_ij x_j over task columns; α starts near identity (``self_weight`` on the
    diagonal, the rest spread evenly), one scalar per pair of tasks."""

    def __init__(self, n_tasks: int, self_weight: float) -> None:
        super().__init__()
        off = (1.0 - self_weight) / (n_tasks - 1) if n_tasks > 1 else 0.0
        alpha = torch.full((n_tasks, n_tasks), off)
        alpha.fill_diagonal_(self_weight if n_tasks > 1 else 1.0)
        self.alpha = nn.Parameter(alpha)

    def forward(self, columns: Tensor) -> Tensor:
        """``columns``: (tasks, batch, ...) -> the same shape, mixed across tasks."""
        return torch.einsum("ij,j...->i...", self.alpha, columns)


class CrossStitchModel(MultiTaskNetwork):
    def __init__(
        self,
        columns: dict[str, Backbone],
        heads: dict[str, nn.Module],
        self_weight: float,
        dense_tasks: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.columns = nn.ModuleDict({name: _module(column) for name, column in columns.items()})
        n_stages = next(iter(columns.values())).num_stages
        self.units = nn.ModuleList(CrossStitchUnit(len(columns), self_weight) for _ in range(n_stages))

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Dense tasks read their column as it enters the last (pooling) stage."""
        names = list(self.columns)  # every column feeds the mix, whichever tasks are asked for
        activations = [inputs] * len(names)
        last = len(self.units) - 1
        pooled_wanted = bool(set(tasks) - self.dense_tasks)
        dense: dict[str, Tensor] = {}
        for index, unit in enumerate(self.units):
            if index == last:
                dense = dict(zip(names, activations))
                if not pooled_wanted:
                    break
            stacked = torch.stack(
                [_backbone(self.columns[n]).run_stage(index, x, inputs) for n, x in zip(names, activations)]
            )
            activations = list(unit(stacked))
        pooled = dict(zip(names, activations))
        return {name: dense[name] if name in self.dense_tasks else pooled[name] for name in tasks}

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        # dense tasks stop before the last unit
        return [cast(CrossStitchUnit, self.units[-2 if self.dense_tasks else -1]).alpha]


class MMoEModel(MultiTaskNetwork):
    def __init__(
        self,
        experts: list[Backbone],
        heads: dict[str, nn.Module],
        gate_size: int,
        dense_tasks: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.experts = nn.ModuleList(_module(expert) for expert in experts)
        self.gates = nn.ModuleDict({name: nn.Linear(gate_size, len(experts)) for name in heads})

    def gate_weights(self, inputs: Tensor, task: str) -> Tensor:
        return torch.softmax(self.gates[task](_backbone(self.experts[0]).gate_features(inputs)), dim=-1)

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        experts = [_backbone(expert) for expert in self.experts]
        dense = [expert.encode(inputs) for expert in experts]
        wanted = {name in self.dense_tasks for name in tasks}
        outputs = {}  # is_dense -> (E, B, ...) expert outputs
        if True in wanted:
            outputs[True] = torch.stack(dense)
        if False in wanted:
            outputs[False] = torch.stack([expert.pool(d, inputs) for expert, d in zip(experts, dense)])
        return {
            name: torch.einsum("be,eb...->b...", self.gate_weights(inputs, name), outputs[name in self.dense_tasks])
            for name in tasks
        }

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return super().task_parameters(task) + list(self.gates[task].parameters())

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [_weight(_last_shared_layer(_backbone(expert), self.dense_tasks)) for expert in self.experts]

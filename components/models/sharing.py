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
``soft_penalty`` one backbone column per task and nothing shared in the forward pass; an
               L2 penalty λ·Σ_{a<b} ‖θ_a − θ_b‖² pulls corresponding parameters together
               (soft parameter sharing, Duong et al. 2015, "Low Resource Dependency
               Parsing: Cross-lingual Parameter Sharing in a Neural Network Parser")
``ple``        per extraction layer, experts of each task and shared experts, mixed by
               task gates and a shared gate (Tang et al. 2020, "Progressive Layered
               Extraction (PLE)"); the layers are the MLP's stages
``sluice``     cross-stitch over subspaces: each column's activations are split into G
               subspaces along the feature axis and a learnable (T·G)×(T·G) matrix mixes
               them after every stage (Ruder et al. 2019, "Latent Multi-task Architecture
               Learning"); G = 1 is cross-stitch
============== ============================================================================

Dense tasks (tagging, span, segmentation) read the backbone's dense features, the others
its pooled vector; the backbone runs once for both.

Example::

    >>> unit = CrossStitchUnit(n_tasks=2, self_weight=0.9)
    >>> unit.alpha.tolist()
    [[0.8999999761581421, 0.10000000149011612], [0.10000000149011612, 0.8999999761581421]]
    >>> sluice = SluiceUnit(n_tasks=2, subspaces=2, self_weight=0.7)
    >>> sluice(torch.ones(2, 5, 4)).shape                      # (tasks, batch, features): mixed, same shape
    torch.Size([2, 5, 4])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from itertools import combinations
from typing import cast

import torch
from torch import Tensor, nn

from components.models.backbones import Backbone, StagedBackbone


class EmbeddedInput(nn.Module):
    """A row's dense part as it is, then each embedded column's id looked up in its own
    table, concatenated: the first layer every task reads (Ma et al. 2018 and Tang et al.
    2020 share the input embeddings below their experts). The ids arrive as floats beside
    the dense part (``components.data.encoders.FeatureEncoder``), exact below 2^24.

    Example::

        >>> layer = EmbeddedInput(dense_width=2, embeddings=[(4, 3)])
        >>> layer(torch.tensor([[0.5, -1.0, 3.0]])).shape       # 2 dense + one 3-wide embedding
        torch.Size([1, 5])
    """

    def __init__(self, dense_width: int, embeddings: list[tuple[int, int]]) -> None:
        super().__init__()
        self.dense_width = dense_width
        self.tables = nn.ModuleList(nn.Embedding(ids, width) for ids, width in embeddings)

    @property
    def out_features(self) -> int:
        return self.dense_width + sum(cast(nn.Embedding, t).embedding_dim for t in self.tables)

    def forward(self, inputs: Tensor) -> Tensor:
        ids = inputs[:, self.dense_width :].long()
        looked_up = [table(ids[:, index]) for index, table in enumerate(self.tables)]
        return torch.cat([inputs[:, : self.dense_width], *looked_up], dim=1)


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

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Features for each of ``tasks``: the input's embeddings (where it has embedded
        columns), then the trunk."""
        embeddings = self._modules.get("embeddings")  # None in networks pickled before embeddings existed
        return self.trunk_features(inputs if embeddings is None else embeddings(inputs), tasks)

    @abstractmethod
    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Features for each of ``tasks``; how the trunk is shared is the subclass's choice."""

    def read_ids_through(self, embeddings: EmbeddedInput) -> None:
        """Every task reads the input through ``embeddings``, shared like the trunk."""
        self.embeddings = embeddings

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        specific = {id(p) for task in self.heads for p in self.task_parameters(task)}
        return [p for p in self.parameters() if id(p) not in specific]

    @abstractmethod
    def gradnorm_parameters(self) -> list[nn.Parameter]:
        """The last shared layer, where GradNorm measures per-task gradient norms."""

    def regularization(self) -> Tensor | None:
        """A penalty added to the training objective, e.g. soft sharing's L2 pull; None here."""
        return None

    def forward(self, inputs: Tensor, tasks: list[str] | None = None) -> dict[str, Tensor]:
        return self.forward_with_representation(inputs, tasks)[0]

    def forward_with_representation(
        self, inputs: Tensor, tasks: list[str] | None = None
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """The heads' outputs, and the one tensor every task's output is computed from (what
        ``training.gradient.compare_on: features`` compares the tasks on); None where the tasks read
        different features."""
        names = tasks or list(self.heads)
        features = self.task_features(inputs, names)
        distinct = {id(f): f for f in features.values()}
        representation = self.common_representation(features) if len(distinct) > 1 else next(iter(distinct.values()))
        return {name: self.heads[name](features[name]) for name in names}, representation

    def common_representation(self, features: dict[str, Tensor]) -> Tensor | None:
        """The tensor that tasks reading different features all derive from; None here."""
        return None


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

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        dense = self.backbone.encode(inputs)
        if not set(tasks) - self.dense_tasks:
            return {name: dense for name in tasks}
        pooled = self.backbone.pool(dense, inputs)
        return {name: dense if name in self.dense_tasks else pooled for name in tasks}

    def common_representation(self, features: dict[str, Tensor]) -> Tensor | None:
        """Dense tasks read the encoder's output, the others its pooling: the dense features."""
        return next(f for name, f in features.items() if name in self.dense_tasks)

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

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
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


def _feature_axis(activation: Tensor) -> int:
    """Channels of a CNN's (batch, channels, height, width); the last axis otherwise
    (an MLP's (batch, features), a Transformer's (batch, tokens, d_model))."""
    return 1 if activation.dim() == 4 else activation.dim() - 1


class SluiceUnit(nn.Module):
    """x'_{i,s} = Σ_{j,r} α_{(i,s),(j,r)} x_{j,r} over task columns i, j and subspaces s, r.
    α starts near identity: ``self_weight`` on the diagonal, the rest spread evenly."""

    def __init__(self, n_tasks: int, subspaces: int, self_weight: float) -> None:
        super().__init__()
        size = n_tasks * subspaces
        alpha = torch.full((size, size), (1.0 - self_weight) / (size - 1) if size > 1 else 0.0)
        alpha.fill_diagonal_(self_weight if size > 1 else 1.0)
        self.alpha = nn.Parameter(alpha)
        self.subspaces = subspaces

    def forward(self, columns: Tensor) -> Tensor:
        """``columns``: (tasks, batch, ...) -> the same shape, subspaces mixed across tasks."""
        axis = _feature_axis(columns[0]) + 1
        if columns.shape[axis] % self.subspaces:
            raise ValueError(f"{columns.shape[axis]} features do not split into {self.subspaces} subspaces")
        parts = torch.stack(columns.chunk(self.subspaces, dim=axis), dim=1)  # (tasks, G, batch, ...)
        flat = parts.flatten(0, 1)  # (tasks·G, batch, ...), task-major
        mixed = torch.einsum("ij,j...->i...", self.alpha, flat).unflatten(0, parts.shape[:2])
        return torch.cat(mixed.unbind(1), dim=axis)


class SluiceModel(CrossStitchModel):
    """Cross-stitch columns whose units mix subspaces (:class:`SluiceUnit`).

    Ruder et al. also learn β, a mix of every layer's output for the heads; the backbones'
    stages here differ in shape (a CNN's blocks, a Transformer's pooling), so the heads read
    the last stage as cross-stitch does, and the paper's optional orthogonality penalty
    between subspaces is left out."""

    def __init__(
        self,
        columns: dict[str, Backbone],
        heads: dict[str, nn.Module],
        subspaces: int,
        self_weight: float,
        dense_tasks: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(columns, heads, self_weight, dense_tasks)
        self.units = nn.ModuleList(SluiceUnit(len(columns), subspaces, self_weight) for _ in self.units)

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [cast(SluiceUnit, self.units[-2 if self.dense_tasks else -1]).alpha]


class SoftSharingModel(MultiTaskNetwork):
    """One backbone column per task; :meth:`regularization` pulls the columns' corresponding
    parameters together with weight ``penalty`` (λ). Nothing is shared in the forward pass,
    so each column belongs to its task and there are no shared parameters for a gradient
    method to combine."""

    def __init__(
        self,
        columns: dict[str, Backbone],
        heads: dict[str, nn.Module],
        penalty: float,
        dense_tasks: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.columns = nn.ModuleDict({name: _module(column) for name, column in columns.items()})
        self.penalty = penalty

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        features = {}
        for name in tasks:
            column = _backbone(self.columns[name])
            dense = column.encode(inputs)
            features[name] = dense if name in self.dense_tasks else column.pool(dense, inputs)
        return features

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return super().task_parameters(task) + list(self.columns[task].parameters())

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        # each task's gradient reaches only its own column's last layer
        return [_weight(_last_shared_layer(_backbone(column), self.dense_tasks)) for column in self.columns.values()]

    def regularization(self) -> Tensor:
        """λ·Σ over pairs of columns of the squared distance between their parameters."""
        distance = torch.zeros(())
        for first, second in combinations(self.columns.values(), 2):
            for a, b in zip(first.parameters(), second.parameters(), strict=True):
                distance = distance.to(a.device) + ((a - b) ** 2).sum()
        return self.penalty * distance


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

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
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


class PLEModel(MultiTaskNetwork):
    """Progressive Layered Extraction (Tang et al. 2020, "Progressive Layered Extraction
    (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations").

    Each extraction layer j (a stage of the expert backbones) has experts of each task and
    shared experts. Task k's gate mixes its own experts and the shared ones (customized gate
    control, CGC), g^{k,j} = softmax(W^{k,j} x^{k,j-1}) · [E_k^j(x^{k,j-1}); E_s^j(x^{s,j-1})],
    and below the last layer a shared gate mixes every expert of the layer for the shared
    path, g^{s,j} = softmax(W^{s,j} x^{s,j-1}) · [E_1^j; …; E_K^j; E_s^j]. The first layer's
    paths all start at the input; task k's head reads x^{k,L}.

    A task's experts below the last layer feed the shared gate, so every task's loss reaches
    them: :meth:`task_parameters` holds only what one task's loss reaches (its head, its
    last-layer experts, its gates of the last two layers)."""

    def __init__(
        self,
        task_experts: dict[str, list[Backbone]],
        shared_experts: list[Backbone],
        heads: dict[str, nn.Module],
        gate_sizes: list[int],
    ) -> None:
        super().__init__(heads)
        self.task_experts = nn.ModuleDict(
            {name: nn.ModuleList(_module(e) for e in experts) for name, experts in task_experts.items()}
        )
        self.shared_experts = nn.ModuleList(_module(e) for e in shared_experts)
        layers = shared_experts[0].num_stages
        if len(gate_sizes) != layers:
            raise ValueError(f"PLE needs one gate size per extraction layer: {layers}, got {len(gate_sizes)}")
        n_shared = len(shared_experts)
        self.task_gates = nn.ModuleDict(
            {
                name: nn.ModuleList(nn.Linear(size, len(experts) + n_shared) for size in gate_sizes)
                for name, experts in task_experts.items()
            }
        )
        n_all = sum(len(e) for e in task_experts.values()) + n_shared
        self.shared_gates = nn.ModuleList(nn.Linear(size, n_all) for size in gate_sizes[:-1])

    @property
    def layers(self) -> int:
        return len(self.shared_gates) + 1

    def _experts(self, task: str) -> list[StagedBackbone]:
        return [cast(StagedBackbone, e) for e in cast(nn.ModuleList, self.task_experts[task])]

    def _gates(self, task: str) -> list[nn.Module]:
        return list(cast(nn.ModuleList, self.task_gates[task]))

    @staticmethod
    def _mix(gate: nn.Module, gate_input: Tensor, experts: Tensor) -> Tensor:
        """softmax(W x) over ``experts`` (E, B, D) -> (B, D)."""
        weights = torch.softmax(gate(gate_input.flatten(1)), dim=-1)
        return torch.einsum("be,eb...->b...", weights, experts)

    def trunk_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        names = list(self.task_experts)  # every task's experts feed the shared path
        paths = dict.fromkeys(names, inputs)
        shared = inputs
        for layer in range(self.layers):
            last = layer == self.layers - 1
            wanted = [n for n in names if n in tasks] if last else names
            outputs = {n: torch.stack([e.run_stage(layer, paths[n], inputs) for e in self._experts(n)]) for n in wanted}
            shared_out = torch.stack([_backbone(e).run_stage(layer, shared, inputs) for e in self.shared_experts])
            mixed = {n: self._mix(self._gates(n)[layer], paths[n], torch.cat([outputs[n], shared_out])) for n in wanted}
            if not last:
                every = torch.cat([*(outputs[n] for n in names), shared_out])
                shared = self._mix(self.shared_gates[layer], shared, every)
            paths = mixed
        return {name: paths[name] for name in tasks}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        last = self.layers - 1
        experts = [p for e in self._experts(task) for p in e.stages[last].parameters()]
        gates = [p for gate in self._gates(task)[max(0, last - 1) :] for p in gate.parameters()]
        return super().task_parameters(task) + experts + gates

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [_weight(_backbone(expert).last_layer()) for expert in self.shared_experts]

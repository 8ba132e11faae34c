"""Inter-task affinity and the task groupings it suggests (Fifty et al. 2021, "Efficiently
Identifying Task Groupings in Multi-Task Networks", TAG).

The affinity of task *i* onto task *j* at step *t* is how much a step on *i*'s loss alone
lowers *j*'s loss on the same batch::

    Z_{i→j} = 1 − L_j(X, θ_s − η ∇_{θ_s} L_i) / L_j(X, θ_s)

with θ_s the shared parameters, the heads kept as they are, and η ``affinity.lookahead_lr``
(a plain gradient step, as in the paper). Positive: *i*'s update helps *j*; negative: it
hurts *j*. Averaged over the steps of a short multi-task training, the T×T matrix says
which tasks help one another.

A grouping splits the tasks into groups trained as separate models. As in the paper, a
task's score in its group is the mean affinity onto it from the group's other members (0
alone), and a grouping's score is the sum over tasks. :func:`recommend` then prefers fewer
models where they cost little score, and never groups a task with ones that do not help
it. Every partition is searched for T ≤ :data:`EXHAUSTIVE_UP_TO` tasks; beyond, groups are
merged greedily. Written here: no maintained library computes lookahead affinities or
searches groupings.

Example::

    >>> affinity = torch.tensor([[0.05, 0.03, -0.02], [0.02, 0.04, -0.03], [-0.01, -0.02, 0.06]])
    >>> best = best_groupings(affinity, ["left", "right", "noise"])
    >>> for grouping in best:
    ...     print(len(grouping.groups), grouping.groups, round(grouping.score, 3))
    1 [['left', 'right', 'noise']] -0.015
    2 [['left', 'right'], ['noise']] 0.05
    3 [['left'], ['right'], ['noise']] 0.0
    >>> recommend(affinity, ["left", "right", "noise"]).groups
    [['left', 'right'], ['noise']]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call

from components.models import MultiTaskNetwork
from components.tasks import Task

#: every partition of up to this many tasks is scored (Bell(8) = 4,140 partitions)
EXHAUSTIVE_UP_TO = 8
#: fewer groups are preferred when they score within this share of the best grouping
SCORE_SLACK = 0.1


def lookahead_affinity(
    model: MultiTaskNetwork, tasks: dict[str, Task], inputs: Tensor, targets: Sequence[Tensor], lr: float
) -> Tensor:
    """One step's T×T affinity matrix on one batch: row *i* is the task stepped on, column
    *j* the task whose loss is measured. The model and its buffers are left as they were:
    every lookahead pass runs on copies of the buffers (batch-norm statistics) and the same
    dropout draw, so the loss ratios measure the parameter step alone."""
    names = list(tasks)
    shared_ids = {id(p) for p in model.shared_parameters()}
    shared = {name: p for name, p in model.named_parameters() if id(p) in shared_ids}
    buffers = dict(model.named_buffers())
    rng_seed = int(torch.randint(0, 2**31 - 1, ()).item())

    def losses(parameters: Mapping[str, Tensor]) -> Tensor:
        with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
            torch.manual_seed(rng_seed)
            state = {**parameters, **{name: buffer.clone() for name, buffer in buffers.items()}}
            outputs = functional_call(model, state, (inputs, names), strict=False)
        return torch.stack(
            [tasks[n].loss(model.heads[n], outputs[n], target).float() for n, target in zip(names, targets)]
        )

    before = losses(shared)
    affinity = torch.zeros(len(names), len(names))
    with torch.no_grad():
        reference = before.detach()
    for source, loss in enumerate(before):
        grads = torch.autograd.grad(loss, list(shared.values()), retain_graph=True, allow_unused=True)
        with torch.no_grad():
            stepped = {name: p if g is None else p - lr * g for (name, p), g in zip(shared.items(), grads, strict=True)}
            after = losses(stepped)
        # a task with no labeled rows in the batch (loss 0) cannot be measured: it stays 0
        measured = reference > 0
        affinity[source] = torch.where(measured, 1 - after / reference.clamp_min(1e-12), 0.0).cpu()
    return affinity


@dataclass(frozen=True)
class Grouping:
    """A partition of the tasks into groups, and its total affinity score."""

    groups: list[list[str]]
    score: float
    #: each task's score in its group: the mean affinity onto it from its group's other members
    task_scores: dict[str, float]


def _partitions(items: list[int]) -> Iterator[list[list[int]]]:
    """Every set partition of ``items`` (each group in first-appearance order)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for index in range(len(partition)):
            yield [*partition[:index], [first, *partition[index]], *partition[index + 1 :]]


def _score(affinity: Tensor, partition: list[list[int]], names: Sequence[str]) -> Grouping:
    task_scores: dict[str, float] = {}
    for group in partition:
        for task in group:
            others = [i for i in group if i != task]
            task_scores[names[task]] = float(affinity[others, task].mean()) if others else 0.0
    groups = [[names[i] for i in sorted(group)] for group in sorted(partition, key=min)]
    return Grouping(groups, sum(task_scores.values()), {n: task_scores[n] for n in names})


def _greedy(affinity: Tensor, names: Sequence[str], n_groups: int) -> Grouping:
    """From all tasks apart, repeatedly merge the two groups whose union scores best, down to
    ``n_groups`` groups (for more tasks than an exhaustive search can score)."""
    partition = [[i] for i in range(len(names))]
    while len(partition) > n_groups:
        merges = [
            [*partition[:a], partition[a] + partition[b], *partition[a + 1 : b], *partition[b + 1 :]]
            for a in range(len(partition))
            for b in range(a + 1, len(partition))
        ]
        partition = max(merges, key=lambda candidate: _score(affinity, candidate, names).score)
    return _score(affinity, partition, names)


def _candidates(affinity: Tensor, names: Sequence[str], max_groups: int | None) -> list[Grouping]:
    limit = min(max_groups or len(names), len(names))
    if len(names) > EXHAUSTIVE_UP_TO:
        return [_greedy(affinity, names, k) for k in range(1, limit + 1)]
    partitions = (p for p in _partitions(list(range(len(names)))) if len(p) <= limit)
    return [_score(affinity, partition, names) for partition in partitions]


def best_groupings(affinity: Tensor, names: Sequence[str], max_groups: int | None = None) -> list[Grouping]:
    """The best-scoring grouping into 1, 2, … ``max_groups`` groups (default: one per task)."""
    best: dict[int, Grouping] = {}
    for grouping in _candidates(affinity, names, max_groups):
        k = len(grouping.groups)
        if k not in best or grouping.score > best[k].score:
            best[k] = grouping
    return [best[k] for k in sorted(best)]


def _everyone_gains(grouping: Grouping) -> bool:
    """Every task that shares a model gets measured help from its group (score > 0)."""
    return all(grouping.task_scores[task] > 0 for group in grouping.groups if len(group) > 1 for task in group)


def recommend(affinity: Tensor, names: Sequence[str], max_groups: int | None = None) -> Grouping:
    """The grouping to train: the fewest groups within :data:`SCORE_SLACK` of the best score,
    among groupings where every task that shares a model gains from it. TAG's score puts no
    price on a model, yet each group is one more to train and serve, and the scores are
    estimates; a task that gains nothing from a group has no reason to be in it. When no
    grouping scores above zero, nothing measurably helps: every task alone."""
    candidates = _candidates(affinity, names, max_groups)
    gaining = [g for g in candidates if _everyone_gains(g)] or candidates
    best = max(g.score for g in gaining)
    if best <= 0:
        return max(gaining, key=lambda g: (len(g.groups), g.score))
    return min((g for g in gaining if g.score >= (1 - SCORE_SLACK) * best), key=lambda g: (len(g.groups), -g.score))


def negative_transfer(affinity: Tensor, names: Sequence[str]) -> dict[str, float]:
    """Tasks whose mean affinity from all the others is below zero when trained all together:
    the others' steps raise their loss."""
    incoming = {}
    for j, name in enumerate(names):
        others = [i for i in range(len(names)) if i != j]
        if others:
            incoming[name] = float(affinity[others, j].mean())
    return {name: value for name, value in incoming.items() if value < 0}

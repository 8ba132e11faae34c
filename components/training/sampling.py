"""How batches mix tasks that come from separate datasets (``training.sampling``).

Each row of a batch first draws its dataset i with probability p_i, then the next row of
that dataset from a shuffled pass over it (reshuffled when used up, so small datasets
repeat and large ones are only partly seen when p_i is below their share; every epoch
starts fresh passes):

=================  ===============================  ============================================
``uniform``        p_i = 1 / D                      every dataset equally often
``proportional``   p_i ∝ n_i                        as if the datasets were one table
``temperature``    p_i ∝ n_i^(1/T)                  T > 1 flattens towards uniform (Arivazhagan
                                                    et al. 2019, "Massively Multilingual Neural
                                                    Machine Translation in the Wild")
``capped``         p_i ∝ min(n_i, K)                examples-proportional mixing with a cap K
                                                    (Raffel et al. 2020, T5, §3.5.2)
=================  ===============================  ============================================

An epoch draws Σ n_i rows, as many as the training splits hold together, so epochs, the
learning curves and ``training.max_epochs`` mean the same with one dataset or several.

Example::

    >>> [round(p, 4) for p in sampling_probabilities([100, 400, 1600], "temperature", temperature=2.0).tolist()]
    [0.1429, 0.2857, 0.5714]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Sampler

from components.training import distributed


def sampling_probabilities(sizes: Sequence[int], strategy: str, temperature: float = 2.0, cap: int = 10000) -> Tensor:
    """p_i of each dataset, from its number of training rows n_i."""
    n = torch.tensor(sizes, dtype=torch.float64)
    weights = {
        "uniform": lambda: torch.ones_like(n),
        "proportional": lambda: n,
        "temperature": lambda: n ** (1.0 / temperature),
        "capped": lambda: n.clamp(max=cap),
    }
    if strategy not in weights:
        raise ValueError(f"unknown sampling {strategy!r}; valid: {', '.join(weights)}")
    w = weights[strategy]()
    return w / w.sum()


class MixtureBatchSampler(Sampler[list[int]]):
    """Batches whose rows come from ``groups`` (the dataset index of every row) drawn with
    ``probabilities``; under data parallelism each process takes its slice of every global
    batch, as :class:`components.training.distributed.RankSlicedBatchSampler` does.

    Written here because torch's ``WeightedRandomSampler`` draws rows with replacement:
    a small dataset would repeat some rows and skip others within a pass.
    """

    def __init__(
        self,
        groups: Tensor,
        probabilities: Tensor,
        batch_size: int,
        generator: torch.Generator,
        context: distributed.Context = distributed.SINGLE_PROCESS,
    ) -> None:
        self.members = [(groups == g).nonzero().flatten() for g in range(len(probabilities))]
        if any(len(m) == 0 for m, p in zip(self.members, probabilities) if p > 0):
            raise ValueError("a dataset drawn with p > 0 has no training rows")
        self.probabilities = probabilities
        self.epoch_size = len(groups)
        self.batch_size = batch_size
        self.generator = generator
        self.context = context

    def draw(self) -> Tensor:
        """One epoch's row indices, in order."""
        choices = torch.multinomial(
            self.probabilities.float(), self.epoch_size, replacement=True, generator=self.generator
        )
        order = torch.empty(self.epoch_size, dtype=torch.long)
        for group, members in enumerate(self.members):
            slots = (choices == group).nonzero().flatten()
            if len(slots):
                passes = -(-len(slots) // len(members))  # shuffled passes, reshuffled each time
                drawn = torch.cat(
                    [members[torch.randperm(len(members), generator=self.generator)] for _ in range(passes)]
                )
                order[slots] = drawn[: len(slots)]
        return order

    def __iter__(self) -> Iterator[list[int]]:
        order = self.draw().tolist()
        for start in range(0, self.epoch_size, self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) >= self.context.world_size:
                yield batch[self.context.rank :: self.context.world_size]

    def __len__(self) -> int:
        return -(-self.epoch_size // self.batch_size)

"""Splits as tensors, and the batches a training or an evaluation draws from them.

Example::

    >>> import torch
    >>> split = TensorSplit(torch.zeros(5, 3), {"y": torch.arange(5)})
    >>> [len(batch[0]) for batch in make_loader(split, ["y"], batch_size=2, shuffle=False, seed=0)]
    [2, 2, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset, default_collate

from components.config import TrainingConfig
from components.config.data import AugmentStep
from components.training import distributed
from components.training.sampling import MixtureBatchSampler, sampling_probabilities


@dataclass(frozen=True)
class TensorSplit:
    """Inputs and per-task targets of one split, already as tensors. With several datasets
    ``groups`` holds each row's dataset index into ``group_names``. ``augment``: what a
    training on this split changes in each batch (``data.augment``, the training split's)."""

    inputs: Tensor
    targets: dict[str, Tensor]
    groups: Tensor | None = None
    group_names: tuple[str, ...] = ()
    augment: Sequence[AugmentStep] = ()

    def __len__(self) -> int:
        return len(self.inputs)

    def for_datasets(self, names: set[str | None]) -> TensorSplit:
        """The rows of the datasets in ``names`` (all rows of a single-dataset split)."""
        if self.groups is None:
            return self
        keep = torch.tensor([self.group_names.index(name) for name in sorted(n for n in names if n is not None)])
        rows = torch.isin(self.groups, keep)
        return TensorSplit(
            self.inputs[rows],
            {k: v[rows] for k, v in self.targets.items()},
            self.groups[rows],
            self.group_names,
            self.augment,
        )


def make_loader(
    split: TensorSplit,
    tasks: list[str],
    batch_size: int,
    shuffle: bool,
    seed: int,
    context: distributed.Context = distributed.SINGLE_PROCESS,
    pin_memory: bool = False,
    config: TrainingConfig | None = None,
) -> DataLoader:
    """Batches of ``batch_size`` rows in a seeded order; under data parallelism each process
    gets its slice of every one of those global batches. Training on rows of several
    datasets (``config`` given) mixes them by ``config.sampling``."""
    dataset = TensorDataset(split.inputs, *(split.targets[name] for name in tasks))
    generator = torch.Generator().manual_seed(seed)
    sampler: torch.utils.data.Sampler[list[int]]
    if config is not None and split.groups is not None:
        sizes = torch.bincount(split.groups, minlength=len(split.group_names))
        present = sizes > 0
        probabilities = torch.zeros(len(sizes), dtype=torch.float64)
        probabilities[present] = sampling_probabilities(
            sizes[present].tolist(), config.sampling, config.sampling_temperature, config.sampling_cap
        )
        sampler = MixtureBatchSampler(split.groups, probabilities, batch_size, generator, context)
    else:
        sampler = distributed.RankSlicedBatchSampler(len(dataset), batch_size, shuffle, generator, context)
    # the loader draws its base seed from the same generator, as with shuffle=True: same batches as before
    return DataLoader(
        dataset, batch_sampler=sampler, generator=generator, pin_memory=pin_memory, collate_fn=_widened_batch
    )


def _widened_batch(rows: list[tuple[Tensor, ...]]) -> list[Tensor]:
    """The rows stacked into a batch; images stored as uint8 (an image input's decoded
    files, memory-mapped) become floats in [0, 1] here, one batch at a time."""
    inputs, *targets = default_collate(rows)
    return [inputs.float() / 255.0 if inputs.dtype == torch.uint8 else inputs, *targets]

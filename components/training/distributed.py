"""Data-parallel training across processes started by ``torchrun`` (``training.devices > 1``).

Each process trains on its slice of every global batch and all processes apply the same
averaged gradient, so they stay identical: the result matches one process on the global
batch (exactly with per-sample normalisation, ``model.cnn.norm: group``; with BatchNorm on
CPU each process normalises over its own slice).

With ``training.gradient: sum`` the model is wrapped in ``DistributedDataParallel``
(:func:`replicate`): its reducer averages the one summed gradient in buckets while
``backward`` still runs, overlapping communication with computation. The other gradient
methods must see each task's gradient averaged over processes *before* the tasks are
combined, which DDP's one reduction cannot give: for them the trainer all-reduces the
shared parameters' per-task Jacobian (or, on features, the Gramian) before combining it,
and every other gradient after backward.

Example::

    >>> context = current()            # rank 0 of 1 outside torchrun
    >>> context.mean(torch.tensor([1.0, 3.0]))
    tensor([1., 3.])

    $ torchrun --standalone --nproc_per_node 2 -m components.cli train-mtl   # what launch() runs
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler, SequentialSampler

from components.errors import PipelineError

if TYPE_CHECKING:
    from components.models import MultiTaskNetwork


class DistributedLaunchError(PipelineError, RuntimeError):
    """The torchrun processes failed; the message carries the end of their output."""


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def mean(self, tensor: Tensor) -> Tensor:
        """The average of ``tensor`` over processes (a new tensor; the input is untouched)."""
        if not self.is_distributed:
            return tensor
        reduced = tensor.detach().clone()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced / self.world_size

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replaces each ``.grad`` by its average over processes, in one flat all-reduce."""
        if not self.is_distributed:
            return
        # every process must send the same layout, so a missing gradient travels as zeros
        params = list(parameters)
        for parameter in params:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        if not params:
            return
        grads = [p.grad for p in params if p.grad is not None]  # every one, filled above
        flat = self.mean(torch.cat([g.reshape(-1) for g in grads]))
        offset = 0
        for grad in grads:
            size = grad.numel()
            grad.copy_(flat[offset : offset + size].view_as(grad))
            offset += size

    def broadcast_from_main(self, module: nn.Module) -> None:
        """Every process starts from rank 0's weights and buffers."""
        if self.is_distributed:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()


SINGLE_PROCESS = Context()


class _RepresentationForward(nn.Module):
    """What DDP wraps: the network's forward that also returns the shared representation
    (DDP prepares its reducer in ``forward``, so the training step must call through it)."""

    def __init__(self, network: MultiTaskNetwork):
        super().__init__()
        self.network = network

    def forward(self, inputs: Tensor, tasks: list[str]) -> Any:
        return self.network.forward_with_representation(inputs, tasks)


def replicate(network: MultiTaskNetwork, device: torch.device) -> nn.Module:
    """``network``'s ``forward_with_representation`` under ``DistributedDataParallel``:
    gradients averaged over processes in buckets during ``backward``.

    Every parameter must take part in each step's loss (``find_unused_parameters`` stays
    off: the losses are computed outside ``forward``, where DDP's search for unused
    parameters would not look). Buffers are not broadcast each step: each process keeps
    the BatchNorm statistics of its own slice, as without DDP (CUDA syncs them anyway).
    """
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        _RepresentationForward(network),
        device_ids=[device.index] if device.type == "cuda" else None,
        broadcast_buffers=False,
        gradient_as_bucket_view=True,  # the gradients live in the buckets: no copy in or out
    )


def current() -> Context:
    """This process's place in the torchrun process group (rank 0 of 1 outside it)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Context()


def init_from_env(device_setting: str) -> Context:
    """Joins the process group torchrun describes in the environment (nccl on CUDA, else gloo)."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        use_cuda = device_setting != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current()


def shutdown() -> None:
    """Leaves the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(cli_args: list[str], processes: int, cwd: Path | None = None) -> None:
    """Runs ``mtl <cli_args>`` in ``processes`` torchrun workers and waits for them, their
    output streamed to this console as it comes (progress included); when they fail, the
    error names the workers' own error lines, else the last lines."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "components.cli",
        *cli_args,
    ]
    tail: collections.deque[str] = collections.deque(maxlen=25)
    errors: list[str] = []  # the workers' own one-line errors, which torchrun's report would bury
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as workers:
        assert workers.stdout is not None
        for line in workers.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
            if line.startswith("error:"):
                errors.append(line.rstrip("\n"))
    if workers.returncode != 0:
        lines = "\n".join(errors or tail)
        raise DistributedLaunchError(f"torchrun with {processes} processes exited with {workers.returncode}:\n{lines}")


class RankSlicedBatchSampler(Sampler[list[int]]):
    """The global batches a single process would draw, each cut into one slice per process.

    Slicing every global batch (rather than sharding the dataset first, as
    ``DistributedSampler`` does) keeps the single-process data order, so one process and N
    processes see the same global batches and the same results.
    """

    def __init__(self, length: int, batch_size: int, shuffle: bool, generator: torch.Generator, context: Context):
        base = RandomSampler(range(length), generator=generator) if shuffle else SequentialSampler(range(length))
        self.batches = BatchSampler(base, batch_size, drop_last=False)
        self.context = context

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) >= self.context.world_size:  # a last batch too small to give every process a row is dropped
                yield batch[self.context.rank :: self.context.world_size]

    def __len__(self) -> int:
        return len(self.batches)

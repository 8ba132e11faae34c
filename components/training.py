"""Training and evaluation loop shared by single-task baselines and the multi-task model.

A baseline is the multi-task loop run with one task, so both get the same backbone,
optimizer, epochs and data order. The loss weighting (``components.weighting``) turns the
task losses into one objective; the gradient method (``components.gradients``) decides how
the per-task gradients on the shared backbone are combined. Each epoch writes a checkpoint
holding model, optimizer, epoch and RNG state, and its sha256 goes into a manifest.

Example::

    >>> history = train(model, tasks, train_set, val_set, params.training, seed=0,
    ...                 checkpoint_dir=Path("models/mtl"))
    >>> history[-1].val_metrics
    {'left': 0.95, 'right': 0.94, 'sum': 0.41}
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from components import distributed
from components.config import TrainingConfig
from components.gradients import Combiner, backward_per_task, build_combiner
from components.models import MultiTaskModel
from components.sampling import MixtureBatchSampler, sampling_probabilities
from components.tasks import Task
from components.weighting import LossWeighting, build_weighting, effective_weights

MANIFEST = "checkpoints.json"


@dataclass(frozen=True)
class TensorSplit:
    """Inputs and per-task targets of one split, already as tensors. With several datasets
    ``groups`` holds each row's dataset index into ``group_names``."""

    inputs: Tensor
    targets: dict[str, Tensor]
    groups: Tensor | None = None
    group_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.inputs)

    def for_datasets(self, names: set[str]) -> "TensorSplit":
        """The rows of the datasets in ``names`` (all rows of a single-dataset split)."""
        if self.groups is None:
            return self
        keep = torch.tensor([self.group_names.index(name) for name in sorted(names)])
        rows = torch.isin(self.groups, keep)
        return TensorSplit(self.inputs[rows], {k: v[rows] for k, v in self.targets.items()}, self.groups[rows], self.group_names)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: dict[str, float]
    val_metrics: dict[str, float]
    seconds: float
    checkpoint: str | None = None
    sha256: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def resolve_device(setting: str) -> torch.device:
    """``auto`` is CUDA when present; under torchrun each process takes its local GPU."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", distributed.current().local_rank)


def _autocast(device: torch.device, config: TrainingConfig):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _loader(
    split: TensorSplit,
    tasks: list[str],
    batch_size: int,
    shuffle: bool,
    seed: int,
    context: distributed.Context = distributed.Context(),
    pin_memory: bool = False,
    config: TrainingConfig | None = None,
) -> DataLoader:
    """Batches of ``batch_size`` rows in a seeded order; under data parallelism each process
    gets its slice of every one of those global batches. Training on rows of several
    datasets (``config`` given) mixes them by ``config.sampling``."""
    dataset = TensorDataset(split.inputs, *(split.targets[name] for name in tasks))
    generator = torch.Generator().manual_seed(seed)
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
    return DataLoader(dataset, batch_sampler=sampler, generator=generator, pin_memory=pin_memory)


@torch.no_grad()
def evaluate_all(
    model: MultiTaskModel,
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
    for inputs, *targets in _loader(split, names, batch_size, shuffle=False, seed=0):
        outputs = model(inputs.to(device), names)
        for name, target in zip(names, targets):
            prediction = tasks[name].predict(model.heads[name], outputs[name]).cpu()
            tasks[name].update_metrics(metrics[name], prediction, target)
    return {name: {key: float(metric.compute()) for key, metric in task_metrics.items()} for name, task_metrics in metrics.items()}


def evaluate(
    model: MultiTaskModel,
    tasks: dict[str, Task],
    split: TensorSplit,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Primary metric of every task in ``tasks`` on ``split``."""
    return primary_metrics(evaluate_all(model, tasks, split, batch_size, device), tasks)


def primary_metrics(scores: dict[str, dict[str, float]], tasks: dict[str, Task]) -> dict[str, float]:
    return {name: scores[name][tasks[name].metric_name] for name in tasks}


def _make_optimizer(
    model: MultiTaskModel, tasks: dict[str, Task], weighting: LossWeighting, config: TrainingConfig
) -> torch.optim.Optimizer:
    """One parameter group for the shared trunk (``shared_lr``), one per task (``lr × lr_scale``)."""
    groups = [{"params": model.shared_parameters(), "lr": config.shared_lr or config.lr}]
    groups += [
        {"params": model.task_parameters(name), "lr": config.lr * task.config.lr_scale}
        for name, task in tasks.items()
    ]
    if weighting.trainable():
        groups.append({"params": weighting.trainable(), "lr": config.lr, "weight_decay": 0.0})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def _task_losses(model: MultiTaskModel, tasks: dict[str, Task], inputs: Tensor, targets: list[Tensor]) -> Tensor:
    outputs = model(inputs, list(tasks))
    return torch.stack(
        [task.loss(model.heads[name], outputs[name], target) for (name, task), target in zip(tasks.items(), targets)]
    )


def _backward(
    combined: Tensor,
    weighted: Tensor,
    model: MultiTaskModel,
    weighting: LossWeighting,
    combiner: Combiner | None,
    context: distributed.Context,
) -> None:
    """Fills every ``.grad``, averaged over data-parallel processes."""
    if combiner is None:
        combined.backward()
        context.average_gradients([*model.parameters(), *weighting.trainable()])
        return
    trainable = weighting.trainable()
    if trainable:  # e.g. uncertainty log-variances learn from the scalarised objective
        grads = torch.autograd.grad(combined, trainable, retain_graph=True, allow_unused=True)
        for parameter, grad in zip(trainable, grads):
            if grad is not None:
                parameter.grad = grad
    specific = [p for task in model.heads for p in model.task_parameters(task)]
    # the shared Jacobian is averaged inside, before the tasks are combined
    backward_per_task(list(weighted), model.shared_parameters(), specific, combiner, context.mean)
    context.average_gradients([*specific, *weighting.trainable()])


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak tensor memory since this training started. CPU: the process's peak resident
    memory so far (ru_maxrss), which can only grow across trainings in one process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


def _improved(task: Task, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if task.higher_is_better else value < best


def train(
    model: MultiTaskModel,
    tasks: dict[str, Task],
    train_split: TensorSplit,
    val_split: TensorSplit,
    config: TrainingConfig,
    seed: int,
    checkpoint_dir: Path,
    keep_best_for: str | None = None,
    label: str = "mtl",
    on_epoch: Callable[[EpochRecord], None] | None = None,
    log: Callable[[str], None] = print,
) -> list[EpochRecord]:
    """Trains ``model`` on ``tasks`` with the configured loss weighting and gradient method.

    With ``keep_best_for=None`` every epoch's checkpoint is kept (``epoch_XXX.pt``) for
    later selection; with a task name only the best epoch by that task's validation
    metric is kept (``best.pt``), as for a single-task baseline.
    """
    seed_everything(seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    context = distributed.current()
    device = resolve_device(config.device)
    names = list(tasks)
    train_split = train_split.for_datasets({task.config.dataset for task in tasks.values()})
    for name in names:
        tasks[name].prepare_head(model.heads[name], train_split.targets[name])
    if context.is_distributed and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    context.broadcast_from_main(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    weighting = build_weighting(config, names, model.gradnorm_parameters()).to(device)
    combiner = None if config.gradient == "sum" else build_combiner(config.gradient, len(names))
    optimizer = _make_optimizer(model, tasks, weighting, config)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    pinned = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    loader = _loader(
        train_split, names, config.batch_size, shuffle=True, seed=seed, context=context, pin_memory=pinned, config=config
    )
    if not context.is_main:
        log = lambda line: None  # noqa: E731 - one voice per training

    history: list[EpochRecord] = []
    best: float | None = None
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        weighting.start_epoch(epoch)
        loss_sums = torch.zeros(len(names))
        weight_sums = torch.zeros(len(names))
        examples = torch.zeros(len(names))  # rows labeled for each task, seen this epoch
        step_seconds = 0.0
        seen = 0
        bar = tqdm(
            loader, desc=f"{label} epoch {epoch}/{config.epochs}", leave=False, unit="batch",
            disable=None if context.is_main else True,
        )
        for inputs, *targets in bar:
            step_started = time.perf_counter()
            inputs = inputs.to(device, non_blocking=pinned)
            targets = [t.to(device, non_blocking=pinned) for t in targets]
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, config):
                local_losses = _task_losses(model, tasks, inputs, targets).float()
            # Weightings see the losses averaged over processes (so their state agrees
            # everywhere) while gradients still flow through this process's losses.
            losses = local_losses + (context.mean(local_losses.detach()) - local_losses.detach())
            combined = weighting(losses)
            weights = effective_weights(combined, losses)
            _backward(combined, weights * losses, model, weighting, combiner, context)
            optimizer.step()
            if weighting.needs_losses_after_step:
                with torch.no_grad(), _autocast(device, config):
                    weighting.after_step(context.mean(_task_losses(model, tasks, inputs, targets).float()))
            else:
                weighting.after_step(None)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # kernels run asynchronously: time them to completion
            step_seconds += time.perf_counter() - step_started
            batch = len(inputs) * context.world_size
            seen += batch
            labeled = torch.stack([tasks[n].labeled(t).sum() for n, t in zip(names, targets)]).float().cpu()
            loss_sums += losses.detach().cpu() * labeled  # a task's mean loss over the rows labeled for it
            weight_sums += weights.cpu() * batch
            examples += labeled
            bar.set_postfix({name: f"{value:.3f}" for name, value in zip(names, losses.tolist())})
        weighting.end_epoch()
        loss_sums, examples = context.mean(loss_sums) * context.world_size, context.mean(examples) * context.world_size
        train_loss = dict(zip(names, (loss_sums / examples.clamp_min(1)).tolist()))
        extra = {"step_seconds": step_seconds / len(loader), "peak_memory_mb": peak_memory_mb(device)}
        extra |= {f"weight.{name}": value for name, value in zip(names, (weight_sums / seen).tolist())}
        extra |= {f"examples.{name}": value for name, value in zip(names, examples.tolist())}
        val_scores = evaluate_all(model, tasks, val_split, config.batch_size, device)
        val_metrics = primary_metrics(val_scores, tasks)
        extra |= {
            f"val.{name}.{key}": value
            for name, scores in val_scores.items()
            for key, value in scores.items()
            if key != tasks[name].metric_name
        }
        record = EpochRecord(epoch, train_loss, val_metrics, time.perf_counter() - started, extra=extra)

        if not context.is_main:  # rank 0 writes checkpoints and logs for all processes
            path = None
        elif keep_best_for is None:
            path = checkpoint_dir / f"epoch_{epoch:03d}.pt"
        elif _improved(tasks[keep_best_for], val_metrics[keep_best_for], best):
            best = val_metrics[keep_best_for]
            path = checkpoint_dir / "best.pt"
        else:
            path = None
        if path is not None:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "rng": rng_state(),
                    "val_metrics": val_metrics,
                },
                path,
            )
            record.checkpoint, record.sha256 = path.name, sha256_file(path)
        history.append(record)
        log(_epoch_line(label, record, tasks, config.epochs))
        if on_epoch is not None and context.is_main:
            on_epoch(record)

    if context.is_main:
        (checkpoint_dir / MANIFEST).write_text(json.dumps([asdict(r) for r in history], indent=2))
    context.barrier()
    return history


def _epoch_line(label: str, record: EpochRecord, tasks: dict[str, Task], epochs: int) -> str:
    losses = " ".join(f"{name}={value:.3f}" for name, value in record.train_loss.items())
    metrics = " ".join(
        f"{name} {tasks[name].metric_name}={value:.4f}" for name, value in record.val_metrics.items()
    )
    saved = f"  -> {record.checkpoint}" if record.checkpoint else ""
    return f"[{label}] epoch {record.epoch}/{epochs}  loss {losses} | val {metrics}  ({record.seconds:.1f}s){saved}"


def load_checkpoint(path: Path, expected_sha256: str | None = None) -> dict:
    """Loads a checkpoint, refusing one whose bytes no longer match the recorded sha256."""
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise RuntimeError(f"{path}: sha256 does not match the manifest; the checkpoint was modified")
    return torch.load(path, map_location="cpu", weights_only=False)

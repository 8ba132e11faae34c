"""The training loop shared by single-task baselines and the multi-task model.

A baseline is the multi-task loop run with one task, so both get the same backbone,
optimizer, budget, schedule and data order. One :func:`train_step` computes the task losses, lets
the loss weighting (``components.weighting``) scalarise them and the gradient method
(``components.gradients``) combine the per-task gradients on the shared parameters, then
steps the optimizer; :func:`train_epoch` runs the steps of one epoch and returns its
:class:`EpochRecord`; :func:`train` runs the epochs, validates, keeps checkpoints, and
stops once the training has converged (``components.training.stopping``).

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from components.config import MLPConfig, TaskConfig, TrainingConfig
    >>> from components.models.backbones import MLPBackbone
    >>> from components.models.sharing import HardSharingModel
    >>> from components.tasks import build_tasks
    >>> tasks = build_tasks({"y": TaskConfig(type="classification", label="y", num_classes=2)})
    >>> model = HardSharingModel(MLPBackbone(MLPConfig(hidden=[4]), in_features=3), {"y": torch.nn.Linear(4, 2)})
    >>> split = TensorSplit(torch.randn(8, 3), {"y": torch.arange(8) % 2})
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     history = train(model, tasks, split, split, TrainingConfig(max_epochs=2, batch_size=4), 0,
    ...                     Path(scratch), log=lambda line: None)
    >>> [record.epoch for record in history], sorted(history[-1].val_metrics), history[0].improved
    ([1, 2], ['y'], True)
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from components.config import TrainingConfig
from components.errors import PipelineError, Terminated
from components.models import MultiTaskNetwork
from components.tasks import Task
from components.training import distributed
from components.training.agreement import GradientAgreement
from components.training.augmentation import JointAugmentation
from components.training.backward import Backward, StepGradients, SumBackward, backward_for
from components.training.checkpoints import save_checkpoint, write_manifest
from components.training.device import resolve_device
from components.training.evaluation import evaluate_all, primary_metrics
from components.training.guard import LossGuard
from components.training.loader import TensorSplit, make_loader
from components.training.previous import discard, restore, set_aside
from components.training.resume import Resume, clear_finished, clear_state, mark_finished, save_state, state_path
from components.training.seeding import rng_state, seed_everything, set_rng_state
from components.training.stopping import EarlyStopping, Ending, Gain, ending, metric_gain
from components.weighting import LossWeighting, build_weighting, effective_weights


@dataclass
class EpochRecord:
    """What one epoch measured; the checkpoint fields are set when it was kept."""

    epoch: int
    train_loss: dict[str, float]
    #: the primary metric of each task on validation
    val_metrics: dict[str, float]
    #: every metric of each task on validation
    val_scores: dict[str, dict[str, float]]
    seconds: float
    step_seconds: float
    peak_memory_mb: float
    #: each task's mean effective loss weight over the epoch's rows
    weights: dict[str, float]
    #: rows labeled for each task seen this epoch
    examples: dict[str, float]
    checkpoint: str | None = None
    sha256: str | None = None
    #: per pair of tasks ("a vs b"): mean cosine of their shared gradients over the measured steps
    gradient_cosine: dict[str, float] = field(default_factory=dict)
    #: per pair of tasks: share of the measured steps on which that cosine was negative
    gradient_conflict: dict[str, float] = field(default_factory=dict)
    #: this epoch improved the early-stopping objective by more than min_delta
    improved: bool = False
    #: the shared trunk's learning rate at the end of the epoch (training.schedule)
    learning_rate: float = 0.0

    def as_metrics(self) -> dict[str, float]:
        """Metric names for a tracking store. The ``/`` groups them into the MLflow UI's chart
        sections (``val``, ``train_loss``, …), and timings go under ``system/``, which it shows
        apart from the model's metrics; the key of a validation metric is the same for a
        baseline and the MTL model, so the run-compare view lines them up."""
        metrics = {
            f"val/{task}.{key}": value for task, scores in self.val_scores.items() for key, value in scores.items()
        }
        metrics |= {f"train_loss/{task}": value for task, value in self.train_loss.items()}
        metrics |= {f"loss_weight/{task}": value for task, value in self.weights.items()}
        metrics |= {f"examples/{task}": value for task, value in self.examples.items()}
        metrics |= {f"grad_cosine/{pair}": value for pair, value in self.gradient_cosine.items()}
        metrics |= {f"grad_conflict/{pair}": value for pair, value in self.gradient_conflict.items()}
        return metrics | {
            "system/step_seconds": self.step_seconds,
            "system/peak_memory_mb": self.peak_memory_mb,
            "system/epoch_seconds": self.seconds,
            "learning_rate": self.learning_rate,
        }


def _autocast(device: torch.device, config: TrainingConfig) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak tensor memory since this training started. CPU: the process's peak resident
    memory so far (ru_maxrss), which can only grow across trainings in one process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


def make_optimizer(
    model: MultiTaskNetwork, tasks: dict[str, Task], weighting: LossWeighting, config: TrainingConfig
) -> torch.optim.Optimizer:
    """One parameter group for the shared trunk (``shared_lr``), one per task (``lr × lr_scale``)."""
    groups = [{"params": model.shared_parameters(), "lr": config.shared_lr or config.lr}]
    groups += [
        {"params": model.task_parameters(name), "lr": config.lr * task.config.lr_scale} for name, task in tasks.items()
    ]
    if weighting.trainable():
        groups.append({"params": weighting.trainable(), "lr": config.lr, "weight_decay": 0.0})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.sgd_momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def task_losses(model: MultiTaskNetwork, tasks: dict[str, Task], inputs: Tensor, targets: list[Tensor]) -> Tensor:
    """The vector of task losses on one batch."""
    return losses_of(model, tasks, model(inputs, list(tasks)), targets)


def losses_of(
    model: MultiTaskNetwork, tasks: dict[str, Task], outputs: dict[str, Tensor], targets: list[Tensor]
) -> Tensor:
    """The vector of task losses of the heads' ``outputs`` on one batch."""
    return torch.stack(
        [task.loss(model.heads[name], outputs[name], target) for (name, task), target in zip(tasks.items(), targets)]
    )


#: a callback on (model, inputs, targets) before each step
Probe = Callable[[MultiTaskNetwork, Tensor, list[Tensor]], None]


@dataclass
class Trainer:
    """What every step of one training uses."""

    model: MultiTaskNetwork
    tasks: dict[str, Task]
    weighting: LossWeighting
    #: how a step fills every ``.grad``: the plain sum, the exact Jacobian, or MGDA-UB on features
    backward: Backward
    optimizer: torch.optim.Optimizer
    config: TrainingConfig
    device: torch.device
    context: distributed.Context
    guard: LossGuard
    #: measures how the tasks' shared gradients agree; None with one task or when switched off
    agreement: GradientAgreement | None = None
    #: sees the model and each batch (on the device) before its step, e.g. to measure affinities
    probe: Probe | None = None
    #: the model under DistributedDataParallel (``gradient: sum`` over several processes),
    #: which the step's forward goes through; None otherwise
    replicated: nn.Module | None = None
    #: ``training.compile``: the step's forward (through DDP when it is used) under
    #: ``torch.compile``; None runs it eagerly
    compiled: Callable[[Tensor, list[str]], tuple[dict[str, Tensor], Tensor | None]] | None = None
    #: ``training.schedule`` stepped after every optimizer step (warmup_cosine); None otherwise
    step_schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    #: ``training.schedule`` stepped after every epoch on its objective (plateau); None otherwise
    epoch_schedule: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    #: the training split's ``data.augment``, applied to each batch on the device; None without one
    augmentation: JointAugmentation | None = None

    @property
    def schedule(self) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
        """Whichever schedule the training has, for its resume state."""
        return self.step_schedule or self.epoch_schedule

    @property
    def eager_forward(self) -> Callable[[Tensor, list[str]], tuple[dict[str, Tensor], Tensor | None]]:
        """The step's forward before any compilation: through DDP when it is used."""
        return self.replicated if self.replicated is not None else self.model.forward_with_representation

    def forward(self, inputs: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """The tasks' outputs and the shared representation, compiled when ``training.compile``."""
        forward = self.compiled if self.compiled is not None else self.eager_forward
        return forward(inputs, list(self.tasks))


@dataclass
class StepResult:
    losses: Tensor
    weights: Tensor
    seconds: float


def train_step(trainer: Trainer, inputs: Tensor, targets: list[Tensor], epoch: int, step: int) -> StepResult:
    """One optimizer step on one batch; returns the task losses (averaged over processes)
    and the weights the loss weighting gave them. A diverged loss stops the training
    before the step is applied."""
    started = time.perf_counter()
    config, device, context, weighting = trainer.config, trainer.device, trainer.context, trainer.weighting
    pinned = device.type == "cuda"
    inputs = inputs.to(device, non_blocking=pinned)
    targets = [t.to(device, non_blocking=pinned) for t in targets]
    if trainer.augmentation is not None:
        inputs, targets = trainer.augmentation(inputs, targets)
    if trainer.probe is not None:
        trainer.probe(trainer.model, inputs, targets)
    trainer.optimizer.zero_grad(set_to_none=True)
    with _autocast(device, config):
        outputs, representation = trainer.forward(inputs)
        local_losses = losses_of(trainer.model, trainer.tasks, outputs, targets).float()
    # Weightings see the losses averaged over processes (so their state agrees
    # everywhere) while gradients still flow through this process's losses.
    losses = local_losses + (context.mean(local_losses.detach()) - local_losses.detach())
    trainer.guard.check(losses, epoch, step)  # the same averaged values on every process
    weighting.learn(losses)  # a weighting's own objective, e.g. GradNorm's L_grad
    combined = weighting(losses)
    weights = effective_weights(combined, losses)
    penalty = trainer.model.regularization()  # e.g. soft sharing's pull between task columns
    if penalty is not None and penalty.requires_grad:
        if trainer.replicated is not None:  # DDP reduces once per forward: one backward pass
            combined = combined + penalty
        else:
            penalty.backward()  # its gradients accumulate with the tasks' below
    trainer.backward.backward(
        StepGradients(
            trainer.model,
            weighting,
            context,
            combined,
            weights * losses,
            step,
            representation,
            trainer.agreement,
            trainer.replicated,
        )
    )
    if config.clip_grad_norm is not None:  # the gradients are already averaged: every process clips alike
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), config.clip_grad_norm)
    trainer.optimizer.step()
    if trainer.step_schedule is not None:
        trainer.step_schedule.step()
    if weighting.needs_losses_after_step:
        with torch.no_grad(), _autocast(device, config):
            weighting.after_step(context.mean(task_losses(trainer.model, trainer.tasks, inputs, targets).float()))
    else:
        weighting.after_step(None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # kernels run asynchronously: time them to completion
    return StepResult(losses.detach(), weights, time.perf_counter() - started)


def train_epoch(
    trainer: Trainer, loader: torch.utils.data.DataLoader, epoch: int, val_split: TensorSplit, label: str
) -> EpochRecord:
    """The steps of one epoch, then validation; returns the epoch's record (no checkpoint yet)."""
    started = time.perf_counter()
    names, context, config = list(trainer.tasks), trainer.context, trainer.config
    trainer.model.train()
    trainer.weighting.start_epoch(epoch)
    loss_sums = torch.zeros(len(names))
    weight_sums = torch.zeros(len(names))
    examples = torch.zeros(len(names))  # rows labeled for each task, seen this epoch
    step_seconds = 0.0
    seen = 0
    bar = tqdm(
        loader,
        desc=f"{label} epoch {epoch}/{config.max_epochs}",
        leave=False,
        unit="batch",
        disable=None if context.is_main else True,
    )
    for index, (inputs, *targets) in enumerate(bar, start=1):
        step = train_step(trainer, inputs, targets, epoch, index)
        step_seconds += step.seconds
        batch = len(inputs) * context.world_size
        seen += batch
        labeled = torch.stack([trainer.tasks[n].labeled(t).sum() for n, t in zip(names, targets)]).float().cpu()
        loss_sums += step.losses.cpu() * labeled  # a task's mean loss over the rows labeled for it
        weight_sums += step.weights.cpu() * batch
        examples += labeled
        bar.set_postfix({name: f"{value:.3f}" for name, value in zip(names, step.losses.tolist())})
    trainer.weighting.end_epoch()
    cosine, conflict = trainer.agreement.summary() if trainer.agreement is not None else ({}, {})
    if trainer.agreement is not None:
        trainer.agreement.reset()
    loss_sums, examples = context.mean(loss_sums) * context.world_size, context.mean(examples) * context.world_size
    val_scores = evaluate_all(trainer.model, trainer.tasks, val_split, config.batch_size, trainer.device)
    return EpochRecord(
        epoch=epoch,
        train_loss=dict(zip(names, (loss_sums / examples.clamp_min(1)).tolist())),
        val_metrics=primary_metrics(val_scores, trainer.tasks),
        val_scores=val_scores,
        seconds=time.perf_counter() - started,
        step_seconds=step_seconds / len(loader),
        peak_memory_mb=peak_memory_mb(trainer.device),
        weights=dict(zip(names, (weight_sums / seen).tolist())),
        examples=dict(zip(names, examples.tolist())),
        gradient_cosine=cosine,
        gradient_conflict=conflict,
        learning_rate=float(trainer.optimizer.param_groups[0]["lr"]),
    )


def _improved(task: Task, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if task.higher_is_better else value < best


class BatchLargerThanSplit(PipelineError, ValueError):
    """A batch holds more rows than the training split: every epoch would be one step."""


def check_batch_fits(batch_size: int, rows: int, label: str) -> None:
    """Refuses a batch larger than the training rows: one step an epoch trains a useless
    model, and nothing would say so."""
    if batch_size > rows:
        raise BatchLargerThanSplit(
            f"[{label}] training.batch_size {batch_size:,} is larger than the {rows:,} training rows: every epoch "
            f"would be one step; set training.batch_size to at most {rows:,} (about {max(1, rows // 10):,} gives "
            "ten steps an epoch)"
        )


def make_trainer(
    model: MultiTaskNetwork, tasks: dict[str, Task], train_split: TensorSplit, config: TrainingConfig
) -> Trainer:
    """Everything a step needs: the model on its device (heads fitted to the training
    targets, e.g. a regression head's output scale), the loss weighting, gradient method,
    optimizer and guards."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    context = distributed.current()
    device = resolve_device(config.device)
    names = list(tasks)
    for name in names:
        tasks[name].prepare_head(model.heads[name], train_split.targets[name])
    if context.is_distributed and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    context.broadcast_from_main(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    weighting = build_weighting(config, names, model.gradnorm_parameters()).to(device)
    backward = backward_for(config, len(names))
    ddp = context.is_distributed and isinstance(backward, SumBackward)
    trainer = Trainer(
        model,
        tasks,
        weighting,
        backward,
        make_optimizer(model, tasks, weighting, config),
        config,
        device,
        context,
        LossGuard(names, config.max_loss_growth),
        # rank 0 alone logs, so only it measures
        GradientAgreement(names, config.gradient_stats_every)
        if len(names) > 1 and config.gradient_stats_every and context.is_main and model.shared_parameters()
        else None,
        replicated=distributed.replicate(model, device) if ddp else None,
    )
    if config.compile:
        trainer.compiled = compile_forward(trainer.eager_forward)
    return trainer


def compile_forward(
    forward: Callable[[Tensor, list[str]], tuple[dict[str, Tensor], Tensor | None]],
) -> Callable[[Tensor, list[str]], tuple[dict[str, Tensor], Tensor | None]]:
    """``forward`` under ``torch.compile`` (a DDP-wrapped model compiles whole, so its
    buckets' all-reduce still overlaps the backward pass)."""
    import torch._functorch.config

    # Gradient methods and gradient agreement backpropagate through one forward T times
    # (retain_graph). Compiled backward functions that donate their buffers allow only one
    # pass; this switch is the one torch's error message names.
    torch._functorch.config.donated_buffer = False
    return torch.compile(forward)


def train(
    model: MultiTaskNetwork,
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
    resume: Resume | None = None,
    probe: Probe | None = None,
    gain: Gain | None = None,
) -> list[EpochRecord]:
    """Trains ``model`` on ``tasks`` with the configured loss weighting and gradient method,
    for at most ``training.max_epochs``, stopping early once converged.

    With ``keep_best_for=None`` every epoch's checkpoint is kept (``epoch_XXX.pt``) for
    later selection; with a task name only the best epoch by that task's validation
    metric is kept (``best.pt``), as for a single-task baseline. Early stopping and the
    plateau schedule watch ``gain`` (default: the relative change of the tasks' own metrics,
    :func:`components.training.stopping.metric_gain`). With ``resume`` every
    epoch also leaves a resume state, and a ``resume.state`` found from a killed run is
    continued after its epoch; the history returned covers every epoch either way. A
    ``resume.finished`` training is not repeated: its epoch records come back, its
    checkpoints stay. ``probe`` sees every batch before its step. How the training ended
    (:func:`training_ending`) is logged as its last line. A fresh start sets the previous
    training's files aside and a failure puts them back (``components.training.previous``);
    a stop from outside (SIGTERM, Ctrl-C) keeps the resume state for the next start.
    """
    if resume is not None and resume.finished is not None:
        if distributed.current().is_main:
            log(f"[{label}] reusing the training that finished in {checkpoint_dir}: same parameters, data and code")
        reused = [EpochRecord(**record) for record in resume.finished.history]
        log(f"[{label}] {training_ending(reused, config).describe()}")
        return reused
    seed_everything(seed)
    train_split = train_split.for_datasets({task.config.dataset for task in tasks.values()})
    check_batch_fits(config.batch_size, len(train_split.inputs), label)
    trainer = make_trainer(model, tasks, train_split, config)
    trainer.probe = probe
    if train_split.augment:
        trainer.augmentation = JointAugmentation(train_split.augment, tasks)
    model, context, device, names = trainer.model, trainer.context, trainer.device, list(tasks)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    loader = make_loader(
        train_split,
        names,
        config.batch_size,
        shuffle=True,
        seed=seed,
        context=context,
        pin_memory=device.type == "cuda",  # page-locked batches copy to the GPU asynchronously
        config=config,
    )
    if not context.is_main:
        log = lambda line: None  # noqa: E731 - one voice per training
    if context.is_distributed:
        how = (
            "DistributedDataParallel, gradients all-reduced in buckets during backward"
            if trainer.replicated is not None
            else "each task's gradients all-reduced before they are combined"
        )
        log(f"[{label}] data-parallel over {context.world_size} processes: {how}")

    gain = gain or metric_gain({name: task.higher_is_better for name, task in tasks.items()})
    stopping = EarlyStopping(gain, config.early_stopping)
    _attach_schedule(trainer, config, len(loader))
    history: list[EpochRecord] = []
    best: float | None = None
    if resume is not None and resume.state is not None:
        history, best = _restore(trainer, loader, resume.state)
        for done in history:  # the stopping state is a function of the epochs' metrics
            stopping.observe(done.val_metrics)
        log(f"[{label}] resuming after epoch {len(history)}/{config.max_epochs} from {state_path(checkpoint_dir)}")
    elif context.is_main:
        set_aside(checkpoint_dir)  # kept until this training finishes: a failed one destroys nothing
    if context.is_main:
        clear_finished(checkpoint_dir)  # until this one finishes, nothing here is reusable
    try:
        for epoch in range(len(history) + 1, config.max_epochs + 1):
            if stopping.should_stop:  # also after a resume that found the training converged already
                break
            record = train_epoch(trainer, loader, epoch, val_split, label)
            record.improved = stopping.observe(record.val_metrics)
            if trainer.epoch_schedule is not None:  # every process saw the same validation metrics
                first = history[0].val_metrics if history else record.val_metrics
                trainer.epoch_schedule.step(gain(record.val_metrics, first))
            path = None
            if context.is_main:  # rank 0 writes checkpoints and logs for all processes
                if keep_best_for is None:
                    path = checkpoint_dir / f"epoch_{epoch:03d}.pt"
                elif _improved(tasks[keep_best_for], record.val_metrics[keep_best_for], best):
                    best = record.val_metrics[keep_best_for]
                    path = checkpoint_dir / "best.pt"
            if path is not None:
                record.sha256 = save_checkpoint(path, model, trainer.optimizer, epoch, record.val_metrics)
                record.checkpoint = path.name
            history.append(record)
            if resume is not None and context.is_main:
                save_state(checkpoint_dir, _snapshot(trainer, loader, history, best, resume))
            log(_epoch_line(label, record, tasks, config.max_epochs))
            if on_epoch is not None and context.is_main:
                on_epoch(record)

        log(f"[{label}] {training_ending(history, config).describe()}")
        if context.is_main:
            write_manifest(checkpoint_dir, history)
            if resume is not None:  # before the state goes: a kill in between still finds one of them
                mark_finished(checkpoint_dir, resume.key, resume.run_id)
            clear_state(checkpoint_dir)
            discard(checkpoint_dir)
    except (KeyboardInterrupt, Terminated):
        raise  # stopped from outside: the resume state continues it, the previous training stays aside
    except BaseException:
        if context.is_main:  # nothing of a failed training is kept: the last good one comes back
            clear_state(checkpoint_dir)
            restore(checkpoint_dir)
        raise
    context.barrier()
    return history


def training_ending(history: list[EpochRecord], config: TrainingConfig) -> Ending:
    """How the training of ``history`` ended: converged, or out of budget while improving."""
    return ending([(r.epoch, r.improved) for r in history], config.max_epochs, config.early_stopping.patience)


def _attach_schedule(trainer: Trainer, config: TrainingConfig, steps_per_epoch: int) -> None:
    """``training.schedule`` on the trainer's optimizer: warmup_cosine is stepped with every
    optimizer step (``trainer.step_schedule``), plateau by the epoch loop on the objective
    (``trainer.epoch_schedule``); constant changes nothing."""
    schedule, optimizer = config.schedule, trainer.optimizer
    if schedule.name == "plateau":
        trainer.epoch_schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",  # the objective is a gain: higher is better
            factor=schedule.plateau_factor,
            patience=schedule.plateau_patience,
            threshold=config.early_stopping.min_delta,
            threshold_mode="abs",  # the gain is a relative change already
        )
    elif schedule.name == "warmup_cosine":
        total = max(1, config.max_epochs * steps_per_epoch)
        warmup = min(total - 1, round(schedule.warmup_epochs * steps_per_epoch))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
        if warmup < 1:
            trainer.step_schedule = cosine
        else:
            ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup)
            trainer.step_schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], [warmup])


def _snapshot(
    trainer: Trainer,
    loader: torch.utils.data.DataLoader,
    history: list[EpochRecord],
    best: float | None,
    resume: Resume,
) -> dict[str, Any]:
    """Everything the next epoch depends on, after the last one finished."""
    assert loader.generator is not None  # make_loader always gives one: the data order is seeded
    return {
        "key": resume.key,
        "run_id": resume.run_id,
        "epoch": history[-1].epoch,
        "history": [asdict(record) for record in history],
        "best": best,
        "model": {name: tensor.detach().cpu() for name, tensor in trainer.model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "weighting": trainer.weighting.state_dict(),
        "gradient": trainer.backward.state_dict(),
        "schedule": trainer.schedule.state_dict() if trainer.schedule is not None else None,
        "guard": list(trainer.guard.initial),
        "data_order": loader.generator.get_state(),
        "rng": rng_state(),
    }


def _restore(
    trainer: Trainer,
    loader: torch.utils.data.DataLoader,
    state: dict[str, Any],
) -> tuple[list[EpochRecord], float | None]:
    """Puts every part back as :func:`_snapshot` saved it; returns the history and best value."""
    assert loader.generator is not None
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.weighting.load_state_dict(state["weighting"])
    trainer.backward.load_state_dict(state["gradient"])
    if trainer.schedule is not None:
        trainer.schedule.load_state_dict(state["schedule"])
    trainer.guard.initial = list(state["guard"])
    loader.generator.set_state(state["data_order"])
    set_rng_state(state["rng"])
    return [EpochRecord(**record) for record in state["history"]], state["best"]


def _epoch_line(label: str, record: EpochRecord, tasks: dict[str, Task], epochs: int) -> str:
    losses = " ".join(f"{name}={value:.3f}" for name, value in record.train_loss.items())
    metrics = " ".join(f"{name} {tasks[name].metric_name}={value:.4f}" for name, value in record.val_metrics.items())
    saved = f"  -> {record.checkpoint}" if record.checkpoint else ""
    return f"[{label}] epoch {record.epoch}/{epochs}  loss {losses} | val {metrics}  ({record.seconds:.1f}s){saved}"

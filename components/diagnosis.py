"""Why the gate said no, from what the run measured, with what to try.

Convergence comes first: when a compared training ended while still improving, that is the
only finding, since every other signal (a starved head, a regressing task) may just be a
model stopped early, and re-weighting it would treat the budget as the model's fault.
Otherwise three signals, each cheap and read off the run itself:

- **a head at its trivial level**: the MTL metric is no better than a constant answer
  (``Task.trivial_prediction``: the majority class, the median) on validation; the head
  learned nothing in the shared model, though its single-task baseline may have;
- **loss scales apart**: the tasks' first-epoch training losses differ tenfold or more,
  so the largest dominates the shared gradient (Kendall et al. 2018, "Multi-Task Learning
  Using Uncertainty to Weigh Losses"; Chen et al. 2018, "GradNorm");
- a rejection on Δm alone (every task within tolerance) says sharing does not pay on
  average, naming the weakest task;
- otherwise a task that regresses with neither sign points at **conflicting gradients**
  (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"): a gradient method, or
  training it apart. Where training measured the tasks' gradients
  (``training.gradient_stats_every``), the finding names the task it conflicted with most,
  or, when it rarely conflicted with any, points at its weight and learning rate instead.

Example::

    >>> from components.selection import TaskResult
    >>> flat = TaskResult("micro_f1", True, 0.33, 0.0, -1.0, 0.02, False, 0.0, 0.3, trivial=0.0)
    >>> diagnose({"genres": flat}, {"genres": 0.5})[0][:62]
    'genres: MTL micro_f1 0 is no better than a constant answer (0)'
"""

from __future__ import annotations

from torch import Tensor

from components.objectives import relative_change
from components.selection import TaskResult, raise_budget
from components.tasks import Task
from components.training.agreement import partner_value
from components.training.loader import TensorSplit

#: a metric within this relative margin of the trivial level counts as at it
TRIVIAL_MARGIN = 0.01
#: first-epoch losses this many times apart count as mismatched scales
LOSS_SCALE_RATIO = 10.0
#: a task whose gradients conflicted with every other's on fewer of the measured steps than
#: this is not held back by conflicts (two random directions conflict half the time)
RARE_CONFLICT = 0.1


def trivial_levels(
    tasks: dict[str, Task], train_targets: dict[str, Tensor], split: TensorSplit
) -> dict[str, float | None]:
    """Each task's primary metric on ``split`` of the constant answer fitted on the
    training targets."""
    levels: dict[str, float | None] = {}
    for name, task in tasks.items():
        target = split.targets[name]
        constant = task.trivial_prediction(train_targets[name], len(target))
        levels[name] = None if constant is None else task.score(constant, target)[task.metric_name]
    return levels


def _at_trivial(value: float, trivial: float | None, higher_is_better: bool) -> bool:
    return trivial is not None and relative_change(value, trivial, higher_is_better) <= TRIVIAL_MARGIN


def _regression_finding(task: str, others: list[str], conflict: dict[str, float], cosine: dict[str, float]) -> str:
    """A regressing task with no collapsed head and no loss-scale gap: conflicting gradients,
    with the task it fought most where training measured it; unless it rarely fought any."""
    measured = {o: share for o in others if (share := partner_value(conflict, task, o)) is not None}
    apart = f"or train {task} apart (`mtl affinity` proposes groups)"
    if not measured:
        return (
            f"{task}: regresses with no collapsed head and no loss-scale gap: the tasks' gradients may conflict: "
            f"try training.gradient: pcgrad, upgrad or cagrad (`mtl compare` runs them side by side), {apart}"
        )
    other = max(measured, key=measured.__getitem__)
    mean_cosine = partner_value(cosine, task, other)
    if measured[other] < RARE_CONFLICT:
        return (
            f"{task}: regresses, but its gradients rarely conflicted with the others' (at most {measured[other]:.0%} "
            f"of measured steps, with {other}; mean cosine {mean_cosine:+.2f}): a gradient method is unlikely to help; "
            "the shared model may give it too little: weigh it up (loss_weighting: uncertainty, or fixed with "
            f"weights), raise tasks.{task}.lr_scale, {apart}"
        )
    return (
        f"{task}: regresses with no collapsed head and no loss-scale gap; its gradients conflicted with {other}'s "
        f"on {measured[other]:.0%} of measured steps (mean cosine {mean_cosine:+.2f}): try training.gradient: "
        f"pcgrad, upgrad or cagrad (`mtl compare` runs them side by side), {apart}"
    )


def diagnose(
    results: dict[str, TaskResult],
    first_losses: dict[str, float],
    conflict: dict[str, float] | None = None,
    cosine: dict[str, float] | None = None,
    delta_m: tuple[float, float | None] | None = None,
    min_delta_m: float = 0.0,
    unconverged: list[str] | None = None,
    max_epochs: int | None = None,
) -> list[str]:
    """What the measurements say, one line per finding, each naming the setting to try.
    ``conflict`` and ``cosine`` are the training's mean gradient agreement per task pair;
    ``delta_m`` is Δm and the lower end of its interval (None without one); ``unconverged``
    names the trainings that ended while still improving, under ``max_epochs``."""
    if unconverged:
        return [
            f"not converged: {'; '.join(unconverged)}; {raise_budget(max_epochs)} (early stopping ends each "
            "training once it converges) before reading anything else into this comparison"
        ]
    findings: list[str] = []
    explained: set[str] = set()
    for name, r in results.items():
        if not _at_trivial(r.mtl, r.trivial, r.higher_is_better):
            continue
        explained.add(name)
        line = f"{name}: MTL {r.metric} {r.mtl:.4g} is no better than a constant answer ({r.trivial:.4g})"
        if _at_trivial(r.baseline, r.trivial, r.higher_is_better):
            line += (
                ", nor is the single-task baseline: the input may not predict it, or it needs more "
                "training (training.max_epochs, training.lr)"
            )
        else:
            line += (
                f"; alone it reached {r.baseline:.4g}: the shared model starves it: weigh it up "
                f"(loss_weighting: uncertainty, or fixed with weights) or raise tasks.{name}.lr_scale"
            )
        findings.append(line)
    losses = {name: loss for name, loss in first_losses.items() if loss > 0}
    if len(losses) > 1:
        high, low = max(losses, key=losses.__getitem__), min(losses, key=losses.__getitem__)
        ratio = losses[high] / losses[low]
        if ratio >= LOSS_SCALE_RATIO:
            explained |= set(losses)
            findings.append(
                f"losses differ {ratio:.0f}x at the start ({high} {losses[high]:.3g}, {low} {losses[low]:.3g}): "
                "the largest steers the shared layers; loss_weighting: uncertainty or gradnorm balances them"
            )
    unexplained = [name for name, r in results.items() if not r.passed and name not in explained]
    for name in unexplained:
        findings.append(_regression_finding(name, [o for o in results if o != name], conflict or {}, cosine or {}))
    if delta_m is not None and results and all(r.passed for r in results.values()):
        mean_change, lower_end = delta_m
        judged = lower_end if lower_end is not None else mean_change
        if judged < min_delta_m:
            weakest = min(results, key=lambda name: results[name].relative_change)
            shown = f"Δm {mean_change:+.2%}" + (f" (lower end {lower_end:+.2%})" if lower_end is not None else "")
            findings.append(
                f"no task regresses beyond its tolerance, but {shown} does not reach selection.min_delta_m "
                f"{min_delta_m:+.2%}: sharing does not pay on average here (weakest: {weakest} "
                f"{results[weakest].relative_change:+.2%}); try loss_weighting: uncertainty, another model.sharing, "
                "or `mtl affinity` to see which tasks help one another"
            )
    return findings

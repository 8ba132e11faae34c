"""Early stopping, and how a training ended: converged, or out of budget while improving.

Each training watches its own validation objective (``training.early_stopping``). An epoch
*improves* when its gain over the best epoch so far exceeds ``min_delta``; a training has
*converged* once ``patience`` epochs have passed without one (Prechelt 1998, "Early Stopping
— But When?", the patience criterion). The gain is a relative change of the metric, so one
``min_delta`` means the same for an accuracy, an MAE or the MTL model's mean relative change:

- a single-task baseline: :func:`metric_gain`, the relative change of its primary metric;
- the MTL model: :func:`score_gain`, the change in the score ``select`` ranks checkpoints
  by (the weighted mean relative change against the baselines).

Whether a training converged is read off its epoch records alone (each says whether it
improved), so a resumed, reused or remote training reports the same ending as the one that
ran (:func:`ending`). A training that ran out of epochs while still improving measured its
budget, not its model: ``select`` calls such a comparison inconclusive.

Example::

    >>> from components.config import EarlyStoppingConfig
    >>> stopping = EarlyStopping(metric_gain({"acc": True}), EarlyStoppingConfig(patience=2, min_delta=0.01))
    >>> [stopping.observe(m) for m in ({"acc": 0.5}, {"acc": 0.6}, {"acc": 0.601}, {"acc": 0.59})]
    [True, True, False, False]
    >>> ending([(1, True), (2, True), (3, False), (4, False)], max_epochs=10, patience=2).describe()
    'converged at epoch 4 (best 2)'
    >>> ending([(1, True), (2, True)], max_epochs=2, patience=2).describe()
    'budget exhausted while improving (best = last epoch, 2 of training.max_epochs 2)'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from components.config import EarlyStoppingConfig
from components.objectives import Objective, relative_change, weighted_score

#: the gain of an epoch's validation metrics over the best epoch's, as a relative change
Gain = Callable[[Mapping[str, float], Mapping[str, float]], float]


def metric_gain(higher_is_better: Mapping[str, bool]) -> Gain:
    """The mean relative change of the tasks' metrics (one task: a baseline's own metric)."""

    def gain(metrics: Mapping[str, float], best: Mapping[str, float]) -> float:
        changes = [relative_change(metrics[t], best[t], better) for t, better in higher_is_better.items()]
        return sum(changes) / len(changes)

    return gain


def score_gain(reference: Mapping[str, float], objectives: Mapping[str, Objective]) -> Gain:
    """The change in ``select``'s checkpoint score (weighted mean Δ_t against ``reference``,
    the baselines' validation metrics): the MTL model stops on what it is chosen by."""

    def gain(metrics: Mapping[str, float], best: Mapping[str, float]) -> float:
        return weighted_score(metrics, reference, objectives) - weighted_score(best, reference, objectives)

    return gain


class EarlyStopping:
    """Tracks the best epoch of one training by ``gain``; :meth:`observe` each epoch's
    validation metrics, in order, and stop when :attr:`should_stop`."""

    def __init__(self, gain: Gain, config: EarlyStoppingConfig) -> None:
        self.gain, self.config = gain, config
        self.best: Mapping[str, float] | None = None
        self.since_best = 0

    def observe(self, metrics: Mapping[str, float]) -> bool:
        """Whether this epoch improves on the best by more than ``min_delta`` (the first always
        does; a non-finite gain never does)."""
        improved = self.best is None or self.gain(metrics, self.best) > self.config.min_delta
        if improved:
            self.best, self.since_best = dict(metrics), 0
        else:
            self.since_best += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Enabled, and ``patience`` epochs have passed without an improvement."""
        return self.config.enabled and self.since_best >= self.config.patience


@dataclass(frozen=True)
class Ending:
    """How a training ended."""

    last_epoch: int
    #: the last epoch that improved the objective by more than min_delta
    best_epoch: int
    max_epochs: int
    patience: int
    #: ``patience`` epochs passed without improvement before the training ended
    converged: bool

    def describe(self) -> str:
        """``converged at epoch k (best j)``, or why it did not."""
        if self.converged:
            return f"converged at epoch {self.last_epoch} (best {self.best_epoch})"
        if self.best_epoch == self.last_epoch:
            return (
                f"budget exhausted while improving (best = last epoch, {self.last_epoch} of training.max_epochs "
                f"{self.max_epochs})"
            )
        waited = self.last_epoch - self.best_epoch
        return (
            f"budget exhausted before converging (best {self.best_epoch}, then {waited} of "
            f"early_stopping.patience {self.patience} epochs without improvement)"
        )


def ending(improvements: Sequence[tuple[int, bool]], max_epochs: int, patience: int) -> Ending:
    """The ending of a training whose epochs ``(epoch, improved)`` ran in order."""
    if not improvements:
        raise ValueError("a training with no epochs has no ending")
    last = improvements[-1][0]
    best = max(epoch for epoch, improved in improvements if improved) if any(i for _, i in improvements) else 0
    return Ending(last, best, max_epochs, patience, converged=last - best >= patience)

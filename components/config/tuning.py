"""``tuning``: the Optuna search every baseline and the MTL model get alike."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class SearchRange(Strict):
    """One hyperparameter's range: uniform between low and high, or log-uniform."""

    low: Annotated[float, Field(ge=0)]
    """The range's lower end."""
    high: Annotated[float, Field(ge=0)]
    """The range's upper end (above low)."""
    log: bool = False
    """Log-uniform between low and high (low > 0) rather than uniform."""

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if self.high <= self.low:
            raise ValueError(f"high {self.high} must exceed low {self.low}")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


TunedName = Literal["lr", "weight_decay", "dropout"]


class TuningConfig(Strict):
    """Tuning parity (``components.jobs.tuning``): every baseline and the MTL model get the
    same Optuna search (seeded TPE sampler, median pruner on the epoch curve) of ``trials``
    trainings over ``space``, each a nested MLflow run; the best trial of each is the model
    compared, not trained again. With training.seeds > 1 the first seed is tuned and the
    others train with its winning values."""

    trials: Annotated[int, Field(ge=0)] = 0
    """Trainings per model; 0 trains each once with the values in training and model (untuned)"""
    space: dict[TunedName, SearchRange] = {
        "lr": SearchRange(low=1e-4, high=3e-3, log=True),
        "weight_decay": SearchRange(low=1e-6, high=1e-2, log=True),
        "dropout": SearchRange(low=0.0, high=0.3),
    }
    """The searched settings: lr and weight_decay (training), dropout (the backbone's)"""
    pruner: Literal["median", "none"] = "median"
    """median: stop a trial whose objective at an epoch is below the median of earlier trials at that epoch (after
    2 trials and 2 epochs); none: every trial runs to its end."""
    storage: str = "optuna.db"
    """The studies' SQLite file, beside mlflow.db: a killed study resumes from it."""

    @model_validator(mode="after")
    def _dropout_below_one(self) -> TuningConfig:
        if "dropout" in self.space and self.space["dropout"].high >= 1:
            raise ValueError("tuning.space.dropout: high must be below 1")
        return self

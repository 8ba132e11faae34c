"""Tuning parity: every baseline and the MTL model get the same hyperparameter search.

Xin et al. 2022 ("Do Current Multi-Task Optimization Methods in Deep Learning Even Help?")
and Kurin et al. 2022 ("In Defense of the Unitary Scalarization for Deep Multi-Task
Learning") found that many reported MTL gains vanish once both sides are tuned with the same
budget. With ``tuning.trials: N`` each side (``baseline-<task>``, ``mtl``) is an Optuna
study of N trainings over ``tuning.space``:

- a seeded TPE sampler, re-seeded from (seed, trials done) before each trial, so a study
  resumed after a kill asks for the values an uninterrupted one would have;
- a median pruner on the epoch curve of the side's own early-stopping objective;
- the studies in SQLite (``tuning.storage``, beside ``mlflow.db``), keyed by the parameters,
  data and code, so a changed config starts a fresh study;
- each trial a nested MLflow run (``<side>-trial-<k>``), trained in its own folder
  (``<side's folder>/trials/<hash of its values>``): a trial killed mid-training is asked
  again with the same values and resumes its training from its last epoch;
- the winning trial's folder becomes the side's folder, so ``select`` compares the winning
  checkpoints and nothing trains twice.

Optuna runs the search; what is written here is only the glue no library has: which
settings a value lands in, the trial folders, and moving the winner into place.

Example::

    >>> from components.config import load_params
    >>> params = load_params("params.yaml")
    >>> tuned = with_values(params, {"lr": 0.002, "dropout": 0.2})
    >>> tuned.training.lr, tuned.model.cnn.dropout, tuned.training.weight_decay == params.training.weight_decay
    (0.002, 0.2, True)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from components.config import Params
from components.errors import PipelineError
from components.io import tracking
from components.training.guard import TrainingDiverged
from components.training.loop import EpochRecord
from components.training.resume import FINISHED_FILE

TRIALS = "trials"
#: the MLflow tag a pruned trial's run carries: the epoch it was stopped after
PRUNED_TAG = "mtl.pruned_after_epoch"
#: trials of the median pruner before it prunes, and epochs of each before it judges
PRUNER_STARTUP_TRIALS, PRUNER_WARMUP_EPOCHS = 2, 2

Result = TypeVar("Result")


class TuningFailed(PipelineError):
    """No trial of a study finished: every one diverged or was pruned."""


@dataclass(frozen=True)
class Side:
    """One model the search tunes: its name, folder, and how its epochs and result score."""

    #: ``baseline-<task>`` or ``mtl``
    name: str
    #: where the side's compared training lives (its first seed's folder)
    directory: Path
    #: an epoch's objective (higher is better), reported to the pruner
    epoch_value: Callable[[EpochRecord], float]


#: trains ``params`` into a folder, logging a run named with the given suffix, calling the
#: callback after each epoch with the epoch and the run; returns the result and its objective
Fit = Callable[[Params, Path, str, Callable[[EpochRecord, str | None], None] | None], tuple[Result, float]]


def with_values(params: Params, values: Mapping[str, float]) -> Params:
    """``params`` with a trial's values: ``lr`` and ``weight_decay`` in training, ``dropout``
    in the backbone's own settings (a backbone without dropout ignores it)."""
    training = params.training.model_copy(update={k: v for k, v in values.items() if k in ("lr", "weight_decay")})
    model = params.model
    backbone = getattr(model, params.model.backbone)
    if "dropout" in values and "dropout" in type(backbone).model_fields:
        dropped = backbone.model_copy(update={"dropout": values["dropout"]})
        model = model.model_copy(update={params.model.backbone: dropped})
    return params.model_copy(update={"training": training, "model": model})


def trial_folder(side: Side, values: Mapping[str, float]) -> Path:
    """Where the trial with ``values`` trains: the same values, the same folder (and resume state)."""
    digest = hashlib.sha256(json.dumps(dict(values), sort_keys=True).encode()).hexdigest()[:12]
    return side.directory / TRIALS / digest


def study_storage(params: Params, root: Path) -> str:
    """The SQLite URL of the studies."""
    return f"sqlite:///{(root / params.tuning.storage).resolve()}"


def tune(params: Params, root: Path, side: Side, key: str, fit: Fit[Result]) -> tuple[Result, dict[str, Any]]:
    """Runs (or resumes) the side's study to ``tuning.trials`` finished trials, moves the best
    trial's training into ``side.directory``, and returns its result with a summary of the
    study (``trials``, ``best`` values, ``value``, ``pruned``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = params.tuning
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS)
        if config.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=f"{side.name}:{key}",
        storage=study_storage(params, root),
        direction="maximize",
        pruner=pruner,
        load_if_exists=True,
    )
    _ask_again_for_killed_trials(study)
    results: dict[int, Result] = {}

    def objective(trial: optuna.Trial) -> float:
        values: dict[str, float] = {
            name: trial.suggest_float(name, bounds.low, bounds.high, log=bounds.log)
            for name, bounds in config.space.items()
        }
        folder = trial_folder(side, values)
        trial.set_user_attr("folder", folder.relative_to(side.directory).as_posix())

        def report(record: EpochRecord, run_id: str | None) -> None:
            trial.report(side.epoch_value(record), record.epoch)
            if trial.should_prune():
                if run_id is not None:
                    tracking.set_tags(run_id, {PRUNED_TAG: str(record.epoch)})
                raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

        result, value = fit(with_values(params, values), folder, f"-trial-{trial.number}", report)
        results[trial.number] = result
        return value

    while (done := _finished(study)) < config.trials:
        # the sampler's draws depend on the seed and the trials so far alone, not on whether
        # this process is the one that ran them
        study.sampler = optuna.samplers.TPESampler(seed=params.seed * 1_000 + done, n_startup_trials=2)
        study.optimize(objective, n_trials=1, catch=(TrainingDiverged,))  # a diverged trial fails alone
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise TuningFailed(
            f"tuning: no trial of {side.name} finished ({config.trials} diverged or were pruned): narrow "
            "tuning.space (a lower tuning.space.lr.high, say) and run again"
        )
    best = study.best_trial
    chosen = side.directory / best.user_attrs["folder"]
    if best.number not in results:  # it finished in an earlier process: its training is reused, not repeated
        results[best.number] = fit(with_values(params, best.params), chosen, f"-trial-{best.number}", None)[0]
    _take(side.directory, chosen)
    for other in (side.directory / TRIALS).iterdir():  # only the winner's checkpoints are kept
        if other != chosen:
            shutil.rmtree(other)
    summary = {
        "trials": config.trials,
        "best": best.params,
        "value": best.value,
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
    }
    print(f"{side.name}: tuned over {config.trials} trials; best {_shown(best.params)} (objective {best.value:.4g})")
    return results[best.number], summary


def tuned_training(
    params: Params, root: Path, side: Side, key: str, fit: Fit[Result], seed: int, directory: Path
) -> tuple[Result, dict[str, Any]]:
    """The side's training with ``seed`` in ``directory`` under tuning: the first seed runs
    (or resumes) the study and takes its winner (:func:`tune`); the others train with the
    winning values. Returns the result and what the study says of it."""
    if seed == params.seed:
        return tune(params, root, side, key, fit)
    values = best_values(params, root, side, key)
    return fit(with_values(params, values), directory, "", None)[0], {"trials": params.tuning.trials, "best": values}


def best_values(params: Params, root: Path, side: Side, key: str) -> dict[str, float]:
    """The winning values of the side's finished study (for the seeds after the first)."""
    import optuna

    study = optuna.load_study(study_name=f"{side.name}:{key}", storage=study_storage(params, root))
    return dict(study.best_trial.params)


#: the study attribute counting trials that were killed and asked again (they are not done)
KILLED_ATTR = "killed_and_asked_again"


def _finished(study: Any) -> int:
    """Trials that ran to an end: completed, pruned, or failed on a diverged training."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    ended = sum(t.state in states for t in study.get_trials(deepcopy=False))
    return ended - int(study.user_attrs.get(KILLED_ATTR, 0))


def _ask_again_for_killed_trials(study: Any) -> None:
    """A trial still RUNNING here died with its process (the project lock lets one run at a
    time): it is failed and its values asked again first, and the new trial trains in the
    same folder, so it resumes where the killed one stopped."""
    import optuna

    killed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in killed:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    if killed:
        study.set_user_attr(KILLED_ATTR, int(study.user_attrs.get(KILLED_ATTR, 0)) + len(killed))


def _take(directory: Path, chosen: Path) -> None:
    """The files of the winning trial's folder become the side's own (its checkpoints, manifest,
    finished marker and result), replacing a previous training's."""
    for stale in directory.iterdir():
        if stale.is_file():
            stale.unlink()
    for path in chosen.iterdir():
        if path.is_file():
            shutil.copy2(path, directory / path.name)
    if not (directory / FINISHED_FILE).exists():
        raise RuntimeError(f"tuning: the winning trial in {chosen} did not finish")


def _shown(values: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.3g}" for name, value in values.items())

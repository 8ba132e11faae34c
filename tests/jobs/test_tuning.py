"""Tuning parity end to end: ``tuning.trials: 4`` gives every baseline and the MTL model a
real Optuna study on SQLite, each trial a nested MLflow run; ``dvc repro`` is SIGKILLed in
the middle of a trial's training, and the next ``dvc repro`` resumes the study (the killed
trial asked again, its training resumed) and compares the winning trials' checkpoints."""

from __future__ import annotations

import json
import sqlite3

import pytest
from mlflow.tracking import MlflowClient

from components.jobs.tuning import TRIALS
from components.training.checkpoints import sha256_file
from tests.helpers.processes import sigkill_when
from tests.helpers.projects import VENV_BIN, accepting, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # real processes and a whole DVC pipeline

TRIAL_COUNT = 4


def _states(database) -> dict[str, list[str]]:
    """Each study's trial states, read straight from Optuna's SQLite file."""
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            rows = connection.execute(
                "SELECT studies.study_name, trials.state FROM trials JOIN studies USING (study_id) ORDER BY trial_id"
            ).fetchall()
    except sqlite3.OperationalError:  # Optuna is still creating its tables
        return {}
    found: dict[str, list[str]] = {}
    for name, state in rows:
        found.setdefault(name.split(":")[0], []).append(state)
    return found


def _kill_mid_trial(root, env) -> None:
    """``dvc repro``, SIGKILLed once a trial of the first baseline has finished and the next
    one has a resume state (it is mid-training)."""
    trials = root / "models/baselines/left" / TRIALS

    def mid_trial() -> bool:
        done = _states(root / "optuna.db").get("baseline-left", []).count("COMPLETE")
        return done >= 1 and any(trials.glob("*/resume.pt"))

    if not sigkill_when([str(VENV_BIN / "dvc"), "repro"], root, env, mid_trial):
        pytest.fail("the study ended before a trial could be killed mid-training")


def test_every_side_gets_the_same_study_and_a_killed_one_resumes(tmp_path):
    raw = accepting(tiny_params_dict())
    del raw["tasks"]["sum"]  # two tasks: three studies keep the test short
    raw["training"]["max_epochs"] = 3
    raw["tuning"]["trials"] = TRIAL_COUNT
    env = project_copy(tmp_path, raw, ("components",), ("dvc.yaml", ".gitignore"))
    _kill_mid_trial(tmp_path, env)
    killed = _states(tmp_path / "optuna.db")["baseline-left"]
    assert "RUNNING" in killed  # the trial the kill interrupted

    rerun = run([str(VENV_BIN / "dvc"), "repro"], tmp_path, env)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    assert "resuming after epoch" in output  # the killed trial, asked again, continued its training

    studies = _states(tmp_path / "optuna.db")
    assert sorted(studies) == ["baseline-left", "baseline-right", "mtl"]
    for name, states in studies.items():  # the same number of finished trials on every side
        assert sum(s in ("COMPLETE", "PRUNED") for s in states) == TRIAL_COUNT, (name, states)
        assert "RUNNING" not in states
    assert studies["baseline-left"].count("FAIL") == 1  # the killed one, failed and asked again

    # the compared checkpoint is the winning trial's, moved into place: not trained twice
    baselines = json.loads((tmp_path / "reports/baselines.json").read_text())
    left = tmp_path / "models/baselines/left"
    (winner,) = (left / TRIALS).iterdir()  # only the winner's folder is kept
    assert sha256_file(left / "best.pt") == sha256_file(winner / "best.pt")
    assert set(baselines["left"]["tuning"]["best"]) == {"lr", "weight_decay", "dropout"}
    mtl = json.loads((tmp_path / "reports/train_mtl.json").read_text())
    assert mtl["tuning"]["trials"] == TRIAL_COUNT

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tiny-mtl").experiment_id
    names = [r.info.run_name for r in client.search_runs([experiment], max_results=500)]
    for side in ("baseline-left", "baseline-right", "mtl-hard-equal-sum"):
        assert {f"{side}-trial-{k}" for k in range(TRIAL_COUNT)} <= set(names), side
    shown = " ".join(rerun.stdout.split())
    assert f"tuned: {TRIAL_COUNT} trials each · trainings:" in shown

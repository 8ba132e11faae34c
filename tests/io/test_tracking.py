"""Pipeline runs belong to one invocation: a stage adopts its own invocation's open run,
ends one an invocation that has ended left RUNNING, and leaves a live one alone."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.io import tracking
from tests.helpers.projects import VENV_BIN, project_copy, run, tiny_params_dict


def _pipeline_run_of(owner: str, experiment: str) -> str:
    run_id = tracking.start_pipeline_run(experiment)
    tracking.client().set_tag(run_id, tracking.INVOCATION_TAG, owner)
    return run_id


def _owner(process: subprocess.Popen) -> str:
    import psutil

    return f"{process.pid}@{psutil.Process(process.pid).create_time():.3f}"


def test_a_stale_run_is_ended_a_live_one_left_alone_and_our_own_adopted(mlflow_db):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended_owner = _owner(ended)
    ended.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = _pipeline_run_of(ended_owner, "e")
        other = _pipeline_run_of(_owner(live), "e")
        opened = tracking.open_pipeline_run("e")
        assert opened not in (stale, other)
        client = MlflowClient(mlflow_db)
        assert client.get_run(stale).info.status == "KILLED"
        assert client.get_run(other).info.status == "RUNNING"  # another pipeline, still going
        assert tracking.open_pipeline_run("e") == opened  # this invocation's run is adopted
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_a_second_dvc_repro_does_not_adopt_the_run_the_first_left_open(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["max_epochs"] = 1
    env = project_copy(tmp_path, raw, ("components",), ("dvc.yaml", ".gitignore"))
    dvc = str(VENV_BIN / "dvc")
    first = run([dvc, "repro", "baselines"], tmp_path, env)  # ends before register: its run stays open
    assert first.returncode == 0, first.stderr
    raw["training"]["max_epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    second = run([dvc, "repro", "baselines"], tmp_path, env)
    assert second.returncode == 0, second.stderr

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(raw["registry"]["experiment"]).experiment_id
    pipelines = client.search_runs([experiment], f"tags.`{tracking.ROLE_TAG}` = 'pipeline'", order_by=["start_time"])
    assert [r.info.status for r in pipelines] == ["KILLED", "RUNNING"]
    children = client.search_runs([experiment], f"tags.`{tracking.ROLE_TAG}` = 'training'")
    epochs_under = [
        sorted(
            c.data.params["training.max_epochs"] for c in children if c.data.tags["mlflow.parentRunId"] == p.info.run_id
        )
        for p in pipelines
    ]
    assert epochs_under == [["1", "1", "1"], ["2", "2", "2"]]  # no parent mixes the two


ROUNDS = 4


def _create_experiments_and_log_splits(uri: str, barrier, results) -> None:
    """One of several trainings started together, round after round: all look a new
    experiment up at once, then all record the same split at once."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        runs = []
        for round_ in range(ROUNDS):
            barrier.wait(timeout=60)
            experiment = tracking.experiment_id(f"fanned-out-{round_}")
            run_id = tracking.client().create_run(experiment).info.run_id
            barrier.wait(timeout=60)
            tracking.log_dataset(run_id, "train", f"digest-{round_}", "data/train.parquet", "training", "{}")
            runs.append((experiment, run_id))
        results.put(runs)
    except Exception as error:  # reported to the test, which names it
        barrier.abort()  # the others stop waiting for this one
        results.put(repr(error))


@pytest.mark.slow
def test_trainings_started_together_share_one_experiment_and_one_dataset_row(mlflow_db):
    """MLflow's SQL store looks a row up and inserts it in two steps: without the retries,
    some of 8 processes started together fail on its unique keys (seen in every try)."""
    tracking.client().search_experiments()  # the database exists, as it does before any fan-out
    context = multiprocessing.get_context("spawn")
    processes = 8
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_create_experiments_and_log_splits, args=(mlflow_db, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join()
    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    client = MlflowClient(mlflow_db)
    for round_ in range(ROUNDS):
        runs = [process_runs[round_] for process_runs in outcomes]
        assert len({experiment for experiment, _ in runs}) == 1  # one experiment, not an error
        for _, run_id in runs:  # every run records the split
            assert [i.dataset.digest for i in client.get_run(run_id).inputs.dataset_inputs] == [f"digest-{round_}"]


def test_artifacts_live_beside_the_database_and_a_copied_database_is_refused(tmp_path, monkeypatch):
    """A project copied with its mlflow.db logged into the original's mlruns/ (issue 25, also
    found): MLflow stores artifact locations absolute, from the folder a process ran in."""
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    monkeypatch.chdir(tmp_path)  # not the project: the artifacts still go beside its database
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{original / 'mlflow.db'}")
    created = tracking.experiment_id("tiny-mtl")
    assert tracking.client().get_experiment(created).artifact_location == (original / "mlruns").as_uri()

    shutil.copytree(original, copy)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    with pytest.raises(tracking.CopiedRegistry, match=rf"artifacts in {original / 'mlruns'}, beside another"):
        tracking.experiment_id("tiny-mtl")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{original / 'mlflow.db'}")
    assert tracking.experiment_id("tiny-mtl") == created  # the original is its own

"""A training that finished with the same parameters, data and code is reused when its stage
runs again (after a crash in a later training, or forced), not repeated; any change to one
of those, or to its checkpoints, trains again."""

from __future__ import annotations

from mlflow import MlflowClient

from components.config import Params
from components.io import tracking
from components.jobs import baselines, prepare, trainings, validate
from components.jobs.layout import read_json
from components.training import resume
from tests.helpers.projects import tiny_params_dict


def _run_baselines(params: Params, root) -> dict:
    parent = tracking.start_pipeline_run(params.registry.experiment)
    summary = baselines.run(params, root, parent)
    tracking.end_run(parent)
    return summary


def _without_runs(value):
    """``value`` without its MLflow run ids, which differ between pipeline runs by design."""
    if isinstance(value, dict):
        return {k: _without_runs(v) for k, v in value.items() if k != "run_id"}
    if isinstance(value, list):
        return [_without_runs(v) for v in value]
    return value


def _checkpoints(root) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in (root / "models").rglob("best.*")}


def test_a_finished_training_is_reused_and_any_change_trains_again(tmp_path, mlflow_db, capsys, monkeypatch):
    params = Params.model_validate(tiny_params_dict())
    prepare.run(params, tmp_path)
    validate.run(params, tmp_path)
    first = _run_baselines(params, tmp_path)
    trained = _checkpoints(tmp_path)
    first_runs = {task: entry["run_id"] for task, entry in read_json(tmp_path / "reports/baselines.json").items()}
    capsys.readouterr()

    # the same stage again: every baseline reused, checkpoints untouched, the same numbers
    again = _run_baselines(params, tmp_path)
    out = capsys.readouterr().out
    assert out.count("reusing the training that finished in") == len(params.tasks)
    assert _checkpoints(tmp_path) == trained
    assert _without_runs(again) == _without_runs(first)
    client = MlflowClient()
    for task, entry in read_json(tmp_path / "reports/baselines.json").items():
        run = client.get_run(entry["run_id"])
        assert entry["run_id"] != first_runs[task]  # a run of this pipeline run, with the epochs' metrics
        assert run.data.tags[trainings.REUSED_FROM_TAG] == first_runs[task]
        assert len(client.get_metric_history(entry["run_id"], f"val/{task}.{entry['metric']}")) == 2

    # a checkpoint altered since: that training runs again, the others are still reused
    with open(tmp_path / "models/baselines/left/best.pt", "ab") as handle:
        handle.write(b"altered")
    _run_baselines(params, tmp_path)
    assert capsys.readouterr().out.count("reusing the training that finished in") == len(params.tasks) - 1
    assert _checkpoints(tmp_path)["models/baselines/left/best.pt"] != trained["models/baselines/left/best.pt"]

    # changed code: nothing is reused
    monkeypatch.setattr(trainings, "code_version", lambda: "another version of the code")
    _run_baselines(params, tmp_path)
    assert "reusing the training" not in capsys.readouterr().out
    assert all(_checkpoints(tmp_path)[name] != mtime for name, mtime in trained.items())
    assert resume.find_finished(tmp_path / "models/baselines/right", "stale key") is None

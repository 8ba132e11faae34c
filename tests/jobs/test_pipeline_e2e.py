"""The whole pipeline on a tiny config, with the real parts: DVC in a temporary git repo,
MLflow on a temporary SQLite database, Prefect through its test harness."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.helpers.projects import VENV_BIN, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # end to end: real processes, servers or whole pipelines


def accepting(raw: dict) -> dict:
    """Tolerances so loose that the tiny model is accepted: the test is about the plumbing."""
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 1.0
    raw["selection"]["min_delta_m"] = -1.0
    return raw


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory):
    """A fresh git + DVC repository holding the pipeline, on a tiny config."""
    root = tmp_path_factory.mktemp("project")
    env = project_copy(root, accepting(tiny_params_dict()), ("components",), ("dvc.yaml", ".gitignore"))
    dvc = str(VENV_BIN / "dvc")
    first = run([dvc, "repro"], root, env)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, env, first


def test_dvc_repro_registers_the_model(dvc_project):
    root, env, first = dvc_project
    assert "MTL vs single-task baselines" in first.stdout and "stage wall time" in first.stdout
    # every training says how it ended (two epochs: out of budget), in its log and in the table
    logs = first.stdout + first.stderr
    for label in ("baseline left", "baseline right", "baseline sum", "mtl"):
        assert f"[{label}] budget exhausted" in logs, label
    shown = " ".join(first.stdout.split())
    assert (
        "untuned · trainings: MTL budget exhausted while improving (best = last epoch, 2 of training.max_epochs 2)"
        in shown
    )
    assert "· baseline left budget exhausted while improving" in shown
    registration = json.loads((root / "reports/registration.json").read_text())
    assert registration["version"] == "1"
    assert registration["aliases"] == ["challenger", "champion"]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias("tiny-mtl", "champion")
    selection = json.loads((root / "reports/selection.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    tags = version.tags
    assert tags["verdict"] == "accepted" == selection["verdict"]
    # paired bootstrap intervals on validation, around the point estimates (percentile
    # intervals may sit slightly off a point on 150 rows: a small allowance)
    shown = " ".join(first.stdout.split())
    assert "90% intervals of Δ val (paired bootstrap; selection.rule: point)" in shown
    assert "under lower_bound: accepted" in shown or "under lower_bound: rejected" in shown
    for result in selection["tasks"].values():
        low, high = result["interval"]
        assert low - 0.01 <= result["relative_change"] <= high + 0.01 and low < high
    assert tags["selection_rule"] == "point"
    assert [float(v) for v in tags["interval.left"].split(",")] == pytest.approx(
        selection["tasks"]["left"]["interval"], abs=1e-6
    )
    assert "interval.delta_m" in tags
    assert float(tags["delta_m"]) == pytest.approx(selection["delta_m"], abs=1e-6)
    assert tags["git_commit"] == head
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert tags["data_version"] == "dvc:" + next(
        o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data"
    )
    for task in ("left", "right", "sum"):
        assert float(tags[f"test.{task}"]) == pytest.approx(selection["tasks"][task]["test"], abs=1e-6)
    assert len(tags["params_hash"]) == 16
    card = version.description
    assert card.startswith("**Verdict: accepted** (every task within tolerance") and "\n# tiny-mtl v1\n" in card
    assert "| left | accuracy ↑ |" in card and tags["data_version"] in card and "## Intended use and limits" in card


def test_one_parent_run_with_nested_trainings_and_curves(dvc_project):
    root, env, _ = dvc_project
    client = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tiny-mtl")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("mtl.role") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"baseline-left", "baseline-right", "baseline-sum", "mtl-hard-equal-sum"}
    curve = client.get_metric_history(children["mtl-hard-equal-sum"].info.run_id, "val/sum.mae")
    assert [m.step for m in curve] == [1, 2]
    assert "delta_m" in parents[0].data.metrics


def test_registered_model_predicts_in_a_fresh_process(dvc_project, tmp_path):
    root, env, _ = dvc_project
    script = (
        "import mlflow, pandas as pd;"
        "m = mlflow.pyfunc.load_model('models:/tiny-mtl@challenger');"
        f"df = pd.read_parquet(r'{root / 'data/test.parquet'}').head(4);"
        "out = m.predict(df[[c for c in df.columns if c.startswith('px_')]]);"
        "print(out.to_json(orient='split'))"
    )
    result = run([sys.executable, "-c", script], tmp_path, env)  # outside both repos
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["columns"] == ["left", "right", "sum"] and len(output["data"]) == 4
    assert all(0 <= row[0] <= 9 and 0 <= row[1] <= 9 for row in output["data"])


def test_second_repro_runs_nothing_and_push_works(dvc_project):
    root, env, _ = dvc_project
    again = run([str(VENV_BIN / "dvc"), "repro"], root, env)
    assert again.returncode == 0
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'sources':"]  # the fingerprint of the raw data, and nothing else
    pushed = run([str(VENV_BIN / "dvc"), "push"], root, env)
    assert pushed.returncode == 0, pushed.stderr
    assert any((root / "remote").rglob("*"))


def changed_stages(root, env) -> set[str]:
    """The stages ``dvc status`` says a change re-runs (``sources`` always runs)."""
    status = run([str(VENV_BIN / "dvc"), "status", "--json"], root, env)
    assert status.returncode == 0, status.stderr
    return set(json.loads(status.stdout or "{}")) - {"sources"}


@pytest.mark.parametrize(
    ("module", "reruns"),
    [
        ("components/selection.py", {"select", "register"}),  # the acceptance policy
        ("components/weighting/gradnorm.py", {"baselines", "train_mtl"}),  # a loss weighting
        ("components/jobs/layout.py", {"prepare", "validate", "baselines", "train_mtl", "select", "register"}),
    ],
)
def test_a_code_change_reruns_only_the_stages_that_run_it(dvc_project, module, reruns):
    root, env, _ = dvc_project
    assert changed_stages(root, env) == set()
    path = root / module
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        assert changed_stages(root, env) == reruns
    finally:
        path.write_text(original)
    assert changed_stages(root, env) == set()


def test_bad_data_stops_the_pipeline_and_leaves_the_champion(dvc_project):
    root, env, _ = dvc_project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["validation"]["min_rows"]["train"] = 100_000
    raw["training"]["max_epochs"] = 3  # would retrain if validation let it through
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    failed = run([str(VENV_BIN / "dvc"), "repro"], root, env)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "data/train.parquet: column '(table)' failed rule expect_table_row_count_to_be_between" in output
    assert "the train split has 400 rows; the minimum is 100000: lower validation.min_rows.train" in " ".join(
        output.split()
    )
    assert "Traceback" not in output
    assert "Running stage 'baselines'" not in output
    client = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    assert len(client.search_model_versions("name = 'tiny-mtl'")) == 1
    assert str(client.get_model_version_by_alias("tiny-mtl", "champion").version) == "1"


def test_by_default_a_verdict_on_unconverged_trainings_is_inconclusive_and_never_champion(dvc_project):
    root, env, _ = dvc_project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["validation"]["min_rows"]["train"] = 100  # as before the bad-data test
    raw["training"]["max_epochs"] = 2
    raw["selection"]["unconverged"] = "inconclusive"  # the default the tiny config turned off
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    again = run([str(VENV_BIN / "dvc"), "repro"], root, env)
    assert again.returncode == 0, again.stdout + again.stderr
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    assert "Running stage 'baselines':" not in ran and "Running stage 'select':" in ran  # the same trainings
    selection = json.loads((root / "reports/selection.json").read_text())
    assert selection["verdict"] == "inconclusive"
    assert len(selection["unconverged"]) == 4 and selection["max_epochs"] == 2
    shown = " ".join(again.stdout.split())
    assert "verdict: INCONCLUSIVE" in shown and "raise training.max_epochs (now 2)" in shown
    # the diagnosis names convergence alone: no re-weighting advice for a training that stopped early
    assert selection["diagnosis"][0].startswith("not converged: baseline left budget exhausted")
    assert len(selection["diagnosis"]) == 1
    registration = json.loads((root / "reports/registration.json").read_text())
    assert registration["aliases"] == ["challenger"] and not registration["champion_moved"]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("tiny-mtl", "champion").version) == "1"
    assert client.get_model_version("tiny-mtl", registration["version"]).tags["verdict"] == "inconclusive"

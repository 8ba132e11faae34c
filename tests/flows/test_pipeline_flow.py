"""The Prefect flow runs the same stages, through Prefect's test harness and a temporary MLflow DB."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.testing.utilities import prefect_test_harness

from components.config import load_params
from components.io import registry
from components.jobs import promote
from components.jobs.versions import champion_intervals
from flows.pipeline import pipeline
from tests.helpers.processes import hold_project
from tests.helpers.projects import accepting, tiny_params_dict

pytestmark = pytest.mark.slow  # end to end: real processes, servers or whole pipelines


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_params(root, raw) -> str:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_flow_registers_then_guards_the_champion(harness, tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)  # MLflow writes run artifacts under the working directory
    client = MlflowClient(mlflow_db, registry_uri=mlflow_db)

    # 1. accepted: version 1 becomes champion and challenger
    state = pipeline(write_params(tmp_path, accepting(tiny_params_dict())), str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    first = state.result()
    assert (first.version, first.aliases) == ("1", ["challenger", "champion"])
    for report in ("validation", "baselines", "train_mtl", "selection", "registration"):
        assert (tmp_path / "reports" / f"{report}.json").exists()
    assert {p.stem for p in (tmp_path / "reports/timings").glob("*.json")} == {
        "prepare",
        "validate",
        "baselines",
        "train_mtl",
        "select",
        "register",
    }
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mtl-results"])))
    assert artifacts and "| left |" in artifacts[0].data and "verdict" in artifacts[0].data

    # 2. rejected by policy: challenger moves to version 2, champion stays on version 1.
    #    This run also exercises soft sharing, a learned weighting and a gradient method end to end.
    rejecting = accepting(tiny_params_dict())
    rejecting["selection"]["min_delta_m"] = 5.0
    rejecting["model"]["sharing"] = "mmoe"
    rejecting["training"].update(loss_weighting="uncertainty", gradient="pcgrad")
    state = pipeline(write_params(tmp_path, rejecting), str(tmp_path), return_state=True)
    second = state.result()
    assert second.version == "2" and second.aliases == ["challenger"] and not second.champion_moved
    assert json.loads((tmp_path / "reports/selection.json").read_text())["verdict"] == "rejected"
    assert str(client.get_model_version_by_alias("tiny-mtl", "champion").version) == "1"
    assert client.get_model_version("tiny-mtl", "2").tags["verdict"] == "rejected"
    challenger = mlflow.pyfunc.load_model("models:/tiny-mtl@challenger")
    frame = pd.read_parquet(tmp_path / "data/test.parquet").head(3)
    predictions = challenger.predict(frame[[c for c in frame.columns if c.startswith("px_")]])
    assert list(predictions.columns) == ["left", "right", "sum"] and len(predictions) == 3

    # 3. promotion re-evaluates on the frozen test split: the policy refuses v2 ...
    params = load_params(tmp_path / "params.yaml")  # the rejecting run's: min Δm 5.0
    refused = promote.run(params, tmp_path, "2")
    assert not refused.promoted and "fails the policy against the baselines" in refused.reason
    assert set(refused.candidate_test) == {"left", "right", "sum"} and refused.champion_test is not None
    assert str(client.get_model_version_by_alias("tiny-mtl", "champion").version) == "1"
    # ... under lower_bound the refusal shows the paired intervals on the test rows ...
    strict = params.model_copy(update={"selection": params.selection.model_copy(update={"rule": "lower_bound"})})
    refused = promote.run(strict, tmp_path, "2")
    assert not refused.promoted and "fails the policy against the baselines (lower_bound)" in refused.reason
    assert "[" in refused.reason, refused.reason
    test_rows = pd.read_parquet(tmp_path / "data/test.parquet")
    v2, v1 = (registry.load_version("tiny-mtl", v).unwrap_python_model() for v in ("2", "1"))
    # paired: a model against itself changes by exactly 0 on every resample
    assert champion_intervals(strict, test_rows, v1, v1) == {t: (0.0, 0.0) for t in ("left", "right", "sum")}
    paired = champion_intervals(strict, test_rows, v2, v1)
    assert set(paired) == {"left", "right", "sum"} and all(low < high for low, high in paired.values())
    # ... --force moves it and records why; the old champion keeps previous-champion; rollback undoes it
    forced = promote.run(params, tmp_path, "2", force=True, reason="hotfix for a customer")
    assert forced.promoted and forced.reason.startswith("forced: hotfix for a customer")
    tags = client.get_model_version("tiny-mtl", "2").tags
    assert tags["forced"] == "true" and tags["force_reason"] == "hotfix for a customer"
    assert str(client.get_model_version_by_alias("tiny-mtl", "previous-champion").version) == "1"
    assert registry.rollback("tiny-mtl") == ("2", "1")

    # 4. under lower_bound the nightly champion guard judges paired intervals against champion v1
    lower = accepting(tiny_params_dict())
    lower["selection"]["rule"] = "lower_bound"
    lower["training"]["lr"] = 0.002  # another model than v1 (the same settings retrain v1 exactly)
    third = pipeline(write_params(tmp_path, lower), str(tmp_path), return_state=True).result()
    assert third.version == "3" and third.champion_moved  # 100 % tolerances: within them
    tags = client.get_model_version("tiny-mtl", "3").tags
    assert tags["selection_rule"] == "lower_bound"
    for task in ("left", "right", "sum"):
        low, high = map(float, tags[f"vs_champion.{task}"].split(","))
        assert -1.0 <= low < high

    # each flow run is one parent MLflow run with the four trainings nested in it
    experiment = client.get_experiment_by_name("tiny-mtl")
    parents = client.search_runs([experiment.experiment_id], "tags.`mtl.role` = 'pipeline'")
    assert len(parents) == 3 and all(p.info.status == "FINISHED" for p in parents)
    for parent in parents:
        children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert len(children) == 4


def test_flow_stops_on_bad_data(harness, tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    raw = accepting(tiny_params_dict())
    raw["validation"]["max_class_share"] = 0.05  # every digit class holds ~10 %
    state = pipeline(write_params(tmp_path, raw), str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "data/train.parquet: column 'left' failed rule expect_column_values_to_not_be_in_set" in state.message
    assert not (tmp_path / "models").exists()
    assert MlflowClient(mlflow_db, registry_uri=mlflow_db).search_registered_models() == []


def test_flow_stops_on_an_unreadable_split_file(harness, tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    raw = accepting(tiny_params_dict())
    (tmp_path / "raw").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / f"raw/{split}.conll").write_text("EU B-ORG\n\nrejects\n")  # a token line without a tag
    raw["data"] = {"source": "files", "files": {s: f"raw/{s}.conll" for s in ("train", "val", "test")}}
    raw["tasks"] = {"ner": {"type": "tagging", "label": "tags", "tags": ["O", "B-ORG"]}}
    raw["data"]["input"] = {"kind": "tokens", "columns": ["tokens"]}
    raw["model"] = {"backbone": "text_transformer"}
    state = pipeline(write_params(tmp_path, raw), str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "raw/train.conll:3: column '(file)' failed rule readable as its format" in state.message
    assert "a token line needs a word and a tag" in state.message
    assert not (tmp_path / "data").exists() and not (tmp_path / "models").exists()
    assert MlflowClient(mlflow_db, registry_uri=mlflow_db).search_registered_models() == []


def test_the_flow_gives_the_same_numbers_every_run_and_one_run_per_project(harness, tmp_path, monkeypatch, mlflow_db):
    """The gate's verdict must not depend on the run: baselines, MTL and selection are equal
    to the last digit across two flow runs on the same seed, data and params."""
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path, accepting(tiny_params_dict()))
    numbers = []
    for _ in range(2):
        state = pipeline(params, str(tmp_path), return_state=True)
        assert state.is_completed(), state.message
        baselines = json.loads((tmp_path / "reports/baselines.json").read_text())
        numbers.append(
            {
                "baselines": {task: (r["val"], r["test"], r["best_epoch"]) for task, r in baselines.items()},
                "mtl": json.loads((tmp_path / "reports/train_mtl.json").read_text())["final_val"],
                "selection": json.loads((tmp_path / "reports/selection.json").read_text()),
            }
        )
    assert numbers[0] == numbers[1]
    assert state.result().version == "1"  # the same model, data and params: the registration is not repeated

    with hold_project(tmp_path) as other:
        state = pipeline(params, str(tmp_path), return_state=True)
    assert state.is_failed() and f"PID {other.pid}" in state.message and "busy" in state.message

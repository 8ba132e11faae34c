"""Serving the registered model: task routing in the pyfunc, `mlflow models serve` and `mtl serve` over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from mlflow.exceptions import MlflowException

from components.config import Params
from components.io import tracking
from tests.helpers.processes import free_port
from tests.helpers.projects import accepting, tiny_params_dict
from tests.helpers.serving import png_base64, unlisted_imports
from tests.helpers.stages import run_stages

pytestmark = pytest.mark.slow  # end to end: real processes, servers or whole pipelines


MAX_ROWS = 160


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One tiny pipeline run registered as champion in a temporary MLflow database."""
    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        patch.chdir(root)
        raw = accepting(tiny_params_dict())
        raw["serving"] = {"max_batch_rows": MAX_ROWS, "chunk_rows": 64}  # a request of 150 test rows takes 3 chunks
        params = Params.model_validate(raw)
        registration = run_stages(params, root)
        assert "champion" in registration.aliases
        pixels = pd.read_parquet(root / "data/test.parquet").head(5).filter(like="px_").astype("float64")
        yield {"root": root, "uri": uri, "params": params, "pixels": pixels}


def test_pyfunc_returns_only_the_requested_tasks(served):
    tracking.client()
    model = mlflow.pyfunc.load_model("models:/tiny-mtl@champion")
    everything = model.predict(served["pixels"])
    assert list(everything.columns) == ["left", "right", "sum"]
    only_sum = model.predict(served["pixels"], params={"tasks": ["sum"]})
    assert list(only_sum.columns) == ["sum"]
    pd.testing.assert_series_equal(only_sum["sum"], everything["sum"])
    two = model.predict(served["pixels"], params={"tasks": ["right", "left"]})
    assert list(two.columns) == ["right", "left"]
    with pytest.raises(MlflowException, match="unknown task.*colour.*valid: left, right, sum"):
        model.predict(served["pixels"], params={"tasks": ["colour"]})
    # an empty list asks for nothing: refused, not read as every task (issue 25, case 22)
    with pytest.raises(MlflowException, match="params.tasks is empty: name at least one of left, right, sum"):
        model.predict(served["pixels"], params={"tasks": []})


def test_a_second_call_for_other_tasks_on_the_same_rows_runs_no_backbone(served):
    tracking.client()
    model = mlflow.pyfunc.load_model("models:/tiny-mtl@champion")
    python = model.unwrap_python_model()
    rows = pd.read_parquet(served["root"] / "data/test.parquet").head(100).filter(like="px_").astype("float64")
    first_conv = next(m for m in python.network.modules() if isinstance(m, torch.nn.Conv2d))
    runs: list[int] = []
    first_conv.register_forward_hook(lambda *_: runs.append(1))
    model.predict(rows, params={"tasks": ["left"]})
    assert python.cache_stats()["misses"] == 100 and len(runs) == 2  # two chunks of 64 rows
    cached = model.predict(rows, params={"tasks": ["sum", "right"]})
    assert python.cache_stats()["hits"] == 100 and len(runs) == 2  # the backbone did not run again
    python.feature_cache = None  # the same model without the cache answers the same
    pd.testing.assert_frame_equal(cached, model.predict(rows, params={"tasks": ["sum", "right"]}), rtol=1e-5)
    assert len(runs) == 4


def test_mlflow_models_serve_answers_invocations_over_http(served):
    port = free_port()
    bin_dir = Path(sys.executable).parent  # mlflow starts `uvicorn` from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": served["uri"],
        "MLFLOW_REGISTRY_URI": served["uri"],
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/tiny-mtl@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=served["root"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not come up:\n{server.stdout.read()[-3000:]}")
                time.sleep(0.5)

        def invoke(payload: dict) -> dict:
            request = urllib.request.Request(
                f"{base}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        frame = served["pixels"]
        split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
        everything = invoke({"dataframe_split": split})["predictions"]
        assert len(everything) == 5 and set(everything[0]) == {"left", "right", "sum"}
        routed = invoke({"dataframe_split": split, "params": {"tasks": ["left"]}})["predictions"]
        assert [row["left"] for row in routed] == [row["left"] for row in everything]
        assert all(set(row) == {"left"} for row in routed)
        # the same images as PNG files, base64 in an image column, get the same answers
        pngs = {"columns": ["image_base64"], "data": [[png_base64(row)] for row in frame.to_numpy()]}
        assert invoke({"dataframe_split": pngs})["predictions"] == everything
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_health_check_flow_reports_a_table_and_fails_below_tolerance(served):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    from flows.health import health_check

    params_path = served["root"] / "params.yaml"
    raw = served["params"].model_dump(mode="json")
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 0.02  # the health tolerance (registration used a loose one)
    params_path.write_text(yaml.safe_dump(raw))
    client = tracking.client()
    with prefect_test_harness(server_startup_timeout=120):
        healthy = health_check(str(params_path), str(served["root"]), return_state=True)
        assert healthy.is_completed(), healthy.message
        rows = healthy.result()
        assert [row["task"] for row in rows] == ["left", "right", "sum"]
        assert all(row["status"] == "ok" for row in rows)  # canary = the test split it was measured on
        with get_client(sync_client=True) as prefect:
            (artifact,) = prefect.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["champion-health"]))
            )
        assert artifact.type == "table" and "registered test" in str(artifact.data)

        # the champion's recorded accuracy on `left` is now far above what it measures: unhealthy
        version = client.get_model_version_by_alias("tiny-mtl", "champion").version
        recorded = client.get_model_version("tiny-mtl", version).tags["test.left"]
        client.set_model_version_tag("tiny-mtl", version, "test.left", "0.99")
        try:
            degraded = health_check(str(params_path), str(served["root"]), return_state=True)
        finally:
            client.set_model_version_tag("tiny-mtl", version, "test.left", recorded)
        assert degraded.is_failed()
        assert f"tiny-mtl v{version} below tolerance: left accuracy" in degraded.message
        assert "right" not in degraded.message


def _no_nan(text: str) -> object:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a response: not valid JSON"))


@pytest.fixture(scope="module")
def scoring(served):
    """MLflow's own scoring server app (what `mlflow models serve` runs) on the champion, in process."""
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    tracking.client()
    model = mlflow.pyfunc.load_model("models:/tiny-mtl@champion")
    test_pixels = pd.read_parquet(served["root"] / "data/test.parquet").filter(like="px_").astype("float64")

    def post(frame: pd.DataFrame, params: dict | None = None):
        payload = {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}
        payload |= {"params": params} if params is not None else {}
        return client.post(
            "/invocations",
            content=json.dumps(payload, allow_nan=True),
            headers={"Content-Type": "application/json"},
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")  # init() sets it; restored afterwards
        with TestClient(scoring_server.init(model)) as client:
            yield post, model, test_pixels


def test_requests_outside_the_input_contract_are_refused_without_echoing_them(scoring):
    post, _, pixels = scoring
    frame = pixels.head(3).copy()
    nan = frame.copy()
    nan.iloc[1, 7] = float("nan")
    huge = frame.copy()
    huge.iloc[0, 7], huge.iloc[2, 7] = 1e30, -1.0
    fraction = frame.copy()
    fraction.iloc[[0, 2], 5] = 0.5
    boolean = frame.copy()
    boolean["px_0003"] = [True, False, True]
    cases = {
        # training reads whole numbers from 0 to 255; these were served as they came (issue 25, case 9)
        "fraction": (fraction, "column px_0005: rule whole_number failed on 2 row(s) at rows 0, 2"),
        "boolean": (boolean, "column px_0003: a boolean where a pixel belongs (a whole number from 0 to 255)"),
        "null": (nan, "column px_0007: rule not_nullable failed on 1 row(s) at rows 1"),
        "out of range": (huge, "column px_0007: rule in_range(0, 255) failed on 2 row(s) at rows 0, 2"),
        "missing column": (frame.drop(columns=["px_0007"]), "column px_0007 is missing"),
    }
    for name, (request, reason) in cases.items():
        response = post(request)
        assert response.status_code == 400, name
        body = _no_nan(response.text)
        assert body["message"] == f"request refused: {reason}", name
        assert "Failed to predict data" not in response.text and "stack_trace" not in body, name


def test_an_unknown_task_is_refused_by_mlflow_models_serve_without_the_rows(scoring):
    """Issue 25, case 20: the refusal went out as "Failed to predict data '   px_0000 … 7 7 7 …'"."""
    post, _, pixels = scoring
    response = post(pixels.head(3), {"tasks": ["colour"]})
    assert response.status_code == 400
    assert "Failed to predict data" not in response.text and "px_0000" not in response.text, response.text
    assert response.json()["message"] == "unknown task(s) colour; valid: left, right, sum"


def test_a_batch_over_the_limit_gets_413_and_a_large_one_is_answered_in_chunks(scoring):
    post, model, pixels = scoring
    over = pd.concat([pixels, pixels], ignore_index=True).head(MAX_ROWS + 1)
    response = post(over)
    assert response.status_code == 413
    assert f"{MAX_ROWS + 1} rows is over this model's limit of {MAX_ROWS}" in response.json()["message"]

    response = post(pixels)  # 150 rows: three chunks of 64
    assert response.status_code == 200
    predictions = pd.DataFrame(_no_nan(response.text)["predictions"])
    one_by_one = pd.concat([model.predict(pixels.iloc[[i]]) for i in range(0, 150, 37)])
    pd.testing.assert_frame_equal(
        predictions.iloc[list(range(0, 150, 37))].reset_index(drop=True), one_by_one.reset_index(drop=True)
    )


def test_a_model_that_answers_nan_is_a_server_fault_not_a_nan_in_json(scoring):
    post, model, pixels = scoring
    head = model.unwrap_python_model().network.heads["sum"]
    last = [p for p in head.parameters()][-1]
    saved = last.detach().clone()
    try:
        with torch.no_grad():
            last.fill_(float("nan"))  # a real fault inside the served network
        response = post(pixels.head(2))
    finally:
        with torch.no_grad():
            last.copy_(saved)
    assert response.status_code == 500
    assert "task 'sum' produced a non-finite value" in _no_nan(response.text)["message"]


def test_the_registered_requirements_cover_what_the_served_model_imports(served):
    env = os.environ | {"MLFLOW_TRACKING_URI": served["uri"], "MLFLOW_REGISTRY_URI": served["uri"]}
    labeled = pd.read_parquet(served["root"] / "data/test.parquet").head(20)
    assert unlisted_imports("models:/tiny-mtl@champion", served["pixels"], labeled, env) == set()


@pytest.fixture(scope="module")
def mtl_serve(served):
    """``mtl serve`` on the champion, a real server process on a free port; yields a poster of
    raw bytes that returns (status, body)."""
    port = free_port()
    params_file = served["root"] / "serve-params.yaml"
    params_file.write_text(yaml.safe_dump(served["params"].model_dump(mode="json")))
    env = {**os.environ, "MLFLOW_TRACKING_URI": served["uri"], "MLFLOW_REGISTRY_URI": served["uri"]}
    command = [str(Path(sys.executable).parent / "mtl"), "serve", "--params", str(params_file), "--port", str(port)]
    server = subprocess.Popen(command, cwd=served["root"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def post(body: bytes, kind: str = "application/json") -> tuple[int, bytes]:
        request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": kind})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mtl serve did not come up:\n{server.stdout.read()[-3000:].decode()}")
                time.sleep(0.5)
        yield post
    finally:
        server.terminate()  # the server this fixture started, by its PID
        server.wait(timeout=30)


def test_mtl_serve_refuses_hostile_bodies_without_echoing_them(served, mtl_serve):
    """Issue 25, cases 19 to 21, over real HTTP: MLflow's scoring server answered these with
    the request itself (14.7 MB for 2 MB of random bytes), its traceback or a RecursionError."""
    marker = "q7-secret-marker"
    frame = served["pixels"]
    split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    rows = json.dumps(split)
    cases = {
        "malformed JSON": (b'{"dataframe_split": {"columns": ["' + marker.encode(), 400, "the body is not valid JSON"),
        "random bytes": (os.urandom(2_000_000), 400, "the body is not UTF-8 text"),
        "instances": (json.dumps({"instances": [{marker: 1}]}).encode(), 400, "must be an object with dataframe_split"),
        "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, 400, "deeper than serving.max_json_depth (10)"),
        "unknown task": (
            f'{{"dataframe_split": {rows}, "params": {{"tasks": ["colour"]}}}}'.encode(),
            400,
            "unknown task(s) colour; valid: left, right, sum",
        ),
        "not JSON": (marker.encode(), 415, "send application/json (got text/csv)"),
    }
    for name, (body, status, reason) in cases.items():
        answer_status, answer = mtl_serve(body, "text/csv" if name == "not JSON" else "application/json")
        assert answer_status == status, (name, answer[:300])
        message = json.loads(answer)["message"]
        assert reason in message, (name, message)
        assert len(answer) < 600 and marker not in answer.decode(), name
        assert b"stack_trace" not in answer and b"Traceback" not in answer and b"Failed to predict" not in answer

    # MLflow's own check of the params' types quotes the rows too: mtl serve keeps only its reason
    status, answer = mtl_serve(f'{{"dataframe_split": {rows}, "params": {{"tasks": [3]}}}}'.encode())
    assert status == 400 and b"px_0000" not in answer and b"Failed to predict" not in answer, answer[:300]
    assert "Invalid parameters found" in json.loads(answer)["message"]

    status, answer = mtl_serve(f'{{"dataframe_split": {rows}, "params": {{"tasks": ["left"]}}}}'.encode())
    assert status == 200, answer[:300]
    expected = mlflow.pyfunc.load_model("models:/tiny-mtl@champion").predict(frame, params={"tasks": ["left"]})
    assert [row["left"] for row in json.loads(answer)["predictions"]] == expected["left"].tolist()


def test_the_guard_refuses_a_body_over_its_size_before_the_app_sees_it():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from components.io.serving_app import RequestGuard

    seen = []
    inner = FastAPI()
    inner.post("/invocations")(lambda: seen.append(1) or {"predictions": []})
    client = TestClient(RequestGuard(inner, max_bytes=1000, max_depth=10))
    small = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}})
    assert client.post("/invocations", content=small, headers={"Content-Type": "application/json"}).status_code == 200
    big = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]] * 500}})
    response = client.post("/invocations", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "serving.max_request_mb (0.001 MB)" in response.json()["message"]
    assert seen == [1]

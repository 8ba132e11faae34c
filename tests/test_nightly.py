"""Nightly retraining on a real Prefect server: deployments from prefect.yaml, the schedule
in the configured timezone, a run on a process worker with trainings on the GPU pool's
worker, registration, dvc push, and a skipped second night."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import local
from tests.conftest import REPO, tiny_params_dict
from tests.test_pipeline_e2e import VENV_BIN, accepting, run
from tests.test_serving import free_port

TIMEZONE = "Europe/Paris"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The repository copied into a fresh git + DVC repo with a local remote, on a tiny config."""
    root = tmp_path_factory.mktemp("nightly")
    for package in ("components", "flows"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", "prefect.yaml"):
        shutil.copy(REPO / name, root / name)
    raw = accepting(tiny_params_dict())
    raw["orchestration"].update(
        nightly={"cron": "0 2 * * *", "timezone": TIMEZONE}, gpu_pool="gpu", work_pool="cpu", push=True
    )
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    (root / ".venv").symlink_to(VENV_BIN.parent)
    port = free_port()
    env = local.server_env(root / ".prefect", port) | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    dvc = str(VENV_BIN / "dvc")
    for command in (
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        [dvc, "config", "core.analytics", "false"],
        [dvc, "remote", "add", "-d", "local", str(root / "remote")],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "pipeline"],
    ):
        assert run(command, root, env).returncode == 0, command
    server = local.start_server(env, port)
    workers = []
    try:
        params = local.load_params(root / "params.yaml")
        local.deploy(params, env, root)
        for pool in ("cpu", "gpu"):
            workers.append(local.start_worker(pool, env, root, root / ".prefect" / f"worker-{pool}.log"))
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            yield root, env
    finally:
        for process in [*workers, server]:
            process.terminate()
            process.wait(timeout=30)


def wait_for(flow_run_id, timeout: float = 420):
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state and flow_run.state.is_final():
                return flow_run
            time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} did not finish within {timeout} s")


def test_deployments_carry_schedule_timezone_and_concurrency(project):
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("nightly-retrain/nightly-retrain")
        assert nightly.work_pool_name == "cpu"
        assert nightly.global_concurrency_limit.limit == 1
        assert nightly.concurrency_options.collision_strategy == "CANCEL_NEW"
        (schedule,) = nightly.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", TIMEZONE)
        assert client.read_deployment_by_name("mtl-train/train").work_pool_name == "gpu"
        health = client.read_deployment_by_name("health-check/health-check")
        assert health.schedules[0].schedule.cron == "0 * * * *"

        # the scheduler fills in upcoming runs: each at 02:00 Paris time
        deadline = time.monotonic() + 90
        while True:
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id={"any_": [nightly.id]}),
                flow_run_filter=FlowRunFilter(state={"type": {"any_": ["SCHEDULED"]}}),
            )
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert scheduled, "no scheduled nightly runs"
    for flow_run in scheduled:
        local_time = flow_run.expected_start_time.astimezone(ZoneInfo(TIMEZONE))
        assert (local_time.hour, local_time.minute) == (2, 0)
        assert flow_run.expected_start_time > datetime.now(ZoneInfo("UTC"))


def test_a_triggered_night_trains_on_the_gpu_pool_registers_pushes_then_skips(project):
    root, env = project
    first = wait_for(run_deployment("nightly-retrain/nightly-retrain", timeout=0).id)
    assert first.state.is_completed(), (first.state.message, (root / ".prefect/worker-cpu.log").read_text()[-3000:])
    assert first.state.name == "Completed"

    # the three baselines and the MTL model ran as `train` deployments on the gpu pool
    with get_client(sync_client=True) as client:
        trainings = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["train"]))
        )
    assert sorted(r.parameters.get("task") or r.parameters["kind"] for r in trainings) == ["left", "mtl", "right", "sum"]
    assert all(r.state.is_completed() for r in trainings)

    uri = env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("tiny-mtl", "champion")
    assert str(champion.version) == "1"
    # data and models went to the DVC remote, and dvc.lock now records them
    assert any((root / "remote").rglob("*")), "nothing was pushed"
    workspace = run([str(VENV_BIN / "dvc"), "status"], root, env)
    assert "Data and pipelines are up to date" in workspace.stdout, workspace.stdout + workspace.stderr
    cloud = run([str(VENV_BIN / "dvc"), "status", "--cloud"], root, env)
    assert "are in sync" in cloud.stdout, cloud.stdout + cloud.stderr
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    data_md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data")
    assert champion.tags["data_version"] == f"dvc:{data_md5}"

    # same data, same params: the next night is skipped, not failed, and registers nothing
    second = wait_for(run_deployment("nightly-retrain/nightly-retrain", timeout=0).id)
    assert second.state.is_completed() and second.state.name == "Skipped"
    assert "unchanged since v1" in second.state.message
    assert len(client.search_model_versions("name = 'tiny-mtl'")) == 1

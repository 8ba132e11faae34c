"""Nightly retraining on a real Prefect server: deployments from prefect.yaml, the schedule
in the configured timezone, a run on a process worker with trainings on the GPU pool's
worker, registration, dvc push, and a skipped second night."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import local
from tests.helpers.processes import free_port
from tests.helpers.projects import VENV_BIN, accepting, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # end to end: real processes, servers or whole pipelines

TIMEZONE = "Europe/Paris"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The repository copied into a fresh git + DVC repo with a local remote, on a tiny config."""
    root = tmp_path_factory.mktemp("nightly")
    raw = accepting(tiny_params_dict())
    raw["training"]["seeds"] = 2  # every training of each seed started at once on the gpu pool
    raw["orchestration"].update(
        nightly={"cron": "0 2 * * *", "timezone": TIMEZONE}, gpu_pool="gpu", work_pool="cpu", push=True
    )
    files = ("dvc.yaml", ".gitignore", "prefect.yaml")
    port = free_port()
    env = local.server_env(root / ".prefect", port) | project_copy(root, raw, ("components", "flows"), files)
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
        local.stop(workers, grace=5)  # the test is over: no run to let finish
        local.stop([server])


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

    # the three baselines and the MTL model, with each of two seeds, ran as `train`
    # deployments on the gpu pool, every baseline started before any finished
    with get_client(sync_client=True) as client:
        trainings = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["train"])))
    assert sorted((r.parameters.get("task") or r.parameters["kind"], r.parameters["seed"]) for r in trainings) == [
        (name, seed) for name in ("left", "mtl", "right", "sum") for seed in (0, 1)
    ]
    assert all(r.state.is_completed() for r in trainings)
    baselines = [r for r in trainings if r.parameters["kind"] == "baseline"]
    assert max(r.expected_start_time for r in baselines) < min(r.end_time for r in baselines)

    uri = env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("tiny-mtl", "champion")
    assert str(champion.version) == "1"
    # data and models went to the DVC remote, and dvc.lock now records them
    assert any((root / "remote").rglob("*")), "nothing was pushed"
    workspace = run([str(VENV_BIN / "dvc"), "status"], root, env)
    # nothing changed but `sources`, the stage that checks the raw data on every repro
    assert workspace.stdout.split() == ["sources:", "always", "changed"], workspace.stdout + workspace.stderr
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


@pytest.mark.parametrize(
    "pool_type, template, gpu_request",
    [
        ("docker", "docker-gpu.json", lambda t: t["variables"]["properties"]["container_create_kwargs"]["default"]),
        (
            "kubernetes",
            "kubernetes-gpu.json",
            lambda t: t["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["resources"],
        ),
    ],
)
def test_gpu_job_templates_are_accepted_by_the_server(project, pool_type, template, gpu_request):
    root, env = project
    created = run(
        [
            *local.prefect(
                "work-pool",
                "create",
                f"gpu-{pool_type}",
                "--type",
                pool_type,
                "--base-job-template",
                str(root / "flows/job_templates" / template),
            )
        ],
        root,
        env,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    with get_client(sync_client=True) as client:
        stored = client.read_work_pool(f"gpu-{pool_type}").base_job_template
    request = gpu_request(stored)
    if pool_type == "docker":
        assert request["device_requests"] == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    else:
        assert request["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
        assert stored["variables"]["properties"]["gpus"]["default"] == 1

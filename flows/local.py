"""``make nightly``: a Prefect server on 127.0.0.1 backed by SQLite, the work pools, the
deployments of ``prefect.yaml``, and process workers; no cloud account.

``prefect.yaml`` takes its schedules and pool names from ``MTL_*`` variables that
:func:`deploy_env` derives from ``params.yaml``, so those are tuned in one place.

    $ make nightly                      # server, pools, deployments, worker; Ctrl-C stops all
    $ make deploy                       # deployments only, against PREFECT_API_URL
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import typer

from components.config import Params, ParamsError, load_params

BIN = Path(sys.executable).parent
DEFAULT_GPU_POOL = "gpu"


def prefect(*args: str) -> list[str]:
    """The venv's ``prefect`` command line."""
    return [str(BIN / "prefect"), *args]


def server_env(home: Path, port: int) -> dict[str, str]:
    """Environment for the server and every client of it: local SQLite, no telemetry."""
    home.mkdir(parents=True, exist_ok=True)
    return os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def deploy_env(params: Params) -> dict[str, str]:
    """The ``MTL_*`` values ``prefect.yaml`` reads, from ``params.orchestration``."""
    orchestration = params.orchestration
    return {
        "MTL_WORK_POOL": orchestration.work_pool,
        "MTL_GPU_POOL": orchestration.gpu_pool or DEFAULT_GPU_POOL,
        "MTL_NIGHTLY_CRON": orchestration.nightly.cron,
        "MTL_NIGHTLY_TIMEZONE": orchestration.nightly.timezone,
        "MTL_HEALTH_CRON": orchestration.health.schedule.cron,
        "MTL_HEALTH_TIMEZONE": orchestration.health.schedule.timezone,
    }


def start_server(env: dict[str, str], port: int, timeout: float = 120) -> subprocess.Popen:
    """``prefect server start`` on 127.0.0.1:``port``; returns once its API answers."""
    log = open(Path(env["PREFECT_HOME"]) / "server.log", "w")
    server = subprocess.Popen(
        prefect("server", "start", "--host", "127.0.0.1", "--port", str(port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.terminate()
            raise RuntimeError(f"the Prefect server did not start; see {log.name}")
        time.sleep(0.5)


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command[1:])}` failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def ensure_pools(params: Params, env: dict[str, str], cwd: Path) -> list[str]:
    """Creates the pools the deployments use as process pools, unless they exist (a GPU
    pool of type docker or kubernetes, created as docs/operations.md shows, is left alone)."""
    pools = [params.orchestration.work_pool, params.orchestration.gpu_pool or DEFAULT_GPU_POOL]
    for pool in dict.fromkeys(pools):
        exists = subprocess.run(prefect("work-pool", "inspect", pool), env=env, cwd=cwd, capture_output=True)
        if exists.returncode != 0:
            _run(prefect("work-pool", "create", pool, "--type", "process"), env, cwd)
    return pools


def deploy(params: Params, env: dict[str, str], project: Path) -> str:
    """Every deployment of ``project/prefect.yaml``, run from ``project``."""
    ensure_pools(params, env, project)
    return _run(prefect("--no-prompt", "deploy", "--all"), env | deploy_env(params), project)


def stop(processes: list[subprocess.Popen], grace: float = 30) -> None:
    """Asks every process to stop (SIGTERM) at once, and kills those still running
    ``grace`` seconds later: a busy worker can take longer than that to shut down, and
    waiting for each in turn would add the graces up."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_worker(pool: str, env: dict[str, str], project: Path, log: Path) -> subprocess.Popen:
    """A process worker on ``pool``, logging to ``log``."""
    handle = open(log, "w")
    return subprocess.Popen(
        prefect("worker", "start", "--pool", pool, "--type", "process"),
        env=env,
        cwd=project,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def main(
    params_path: Path = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file."),
    port: int = typer.Option(4200, help="Port of the local Prefect server."),
    deploy_only: bool = typer.Option(False, "--deploy-only", help="Deploy to PREFECT_API_URL and exit."),
) -> None:
    """``make nightly`` / ``make deploy``."""
    project = Path.cwd()
    try:
        params = load_params(params_path)
    except ParamsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if deploy_only:
        print(deploy(params, os.environ | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}, project))
        return
    env = server_env(project / ".prefect", port)
    processes = [start_server(env, port)]
    try:
        print(deploy(params, env, project))
        pools = [
            params.orchestration.work_pool,
            *([params.orchestration.gpu_pool] if params.orchestration.gpu_pool else []),
        ]
        for pool in dict.fromkeys(pools):
            processes.append(start_worker(pool, env, project, project / ".prefect" / f"worker-{pool}.log"))
        print(
            f"Prefect UI: http://127.0.0.1:{port}  ·  nightly-retrain at '{params.orchestration.nightly.cron}' "
            f"{params.orchestration.nightly.timezone}  ·  workers on {', '.join(dict.fromkeys(pools))} "
            f"(logs in .prefect/)  ·  run now: PREFECT_API_URL={env['PREFECT_API_URL']} "
            f"{BIN / 'prefect'} deployment run nightly-retrain/nightly-retrain  ·  Ctrl-C stops"
        )
        while all(process.poll() is None for process in processes):
            time.sleep(1)
        raise RuntimeError("the Prefect server or a worker stopped; see the logs in .prefect/")
    except KeyboardInterrupt:
        pass
    finally:
        stop(processes)


if __name__ == "__main__":
    typer.run(main)

"""``make chaos``: the reliability scenarios, end to end with real processes on a tiny config,
as one table of scenario, expected, observed and pass. Exits 1 if any scenario fails.

Every scenario works on its own copy of one tiny project that ran the pipeline up to
``select`` (real ``mtl`` commands, MLflow on the copy's SQLite file): a diverging training,
a crafted pickle, swapped weights under a signing key, two registrations at once, a rerun,
a deleted registry, a SIGKILL and a SIGTERM mid-training, a full disk (a tmpfs, where this
machine may mount one), a truncated registry database, two pipelines in one folder, bad data
and config, and requests outside the serving contract (with the rows/s of a 10,000-row batch).

    $ make chaos            # .venv/bin/python -m scripts.chaos [--keep DIR]
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import typer
import yaml
from rich.console import Console
from rich.table import Table

from tests.helpers.processes import hold_project
from tests.helpers.projects import REPO, accepting, tiny_params_dict

EPOCHS = 4


@dataclass
class Outcome:
    scenario: str
    expected: str
    observed: str
    passed: bool | None  # None: not run here (a fault this machine cannot make)


class Project:
    """A tiny project folder with its own MLflow database; runs ``mtl`` there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = os.environ | {
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
        }
        self.env.pop("MTL_SIGNING_KEY", None)

    def copy(self, name: str) -> Project:
        """The project copied whole, its MLflow database re-homed: MLflow stores artifact
        locations absolute, and the pipeline refuses a database whose artifacts lie in
        another project (``components.io.tracking.CopiedRegistry``)."""
        import sqlite3

        target = self.root.parent / name
        shutil.copytree(self.root, target, ignore=shutil.ignore_patterns(".mtl"))
        old, new = (self.root / "mlruns").as_uri(), (target / "mlruns").as_uri()
        with contextlib.closing(sqlite3.connect(target / "mlflow.db")) as database, database:
            database.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (old, new))
            database.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
        return Project(target)

    def params(self, **changes: object) -> None:
        """Edits params.yaml: dotted keys, e.g. ``**{"training.lr": 1e30}``."""
        raw = yaml.safe_load((self.root / "params.yaml").read_text())
        for dotted, value in changes.items():
            *parents, leaf = dotted.split(".")
            node = raw
            for key in parents:
                node = node[key]
            node[leaf] = value
        (self.root / "params.yaml").write_text(yaml.safe_dump(raw))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "components.cli", *args, "--params", "params.yaml", "--root", "."]

    def mtl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args), cwd=self.root, env=env or self.env, capture_output=True, text=True, timeout=600
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def versions(self) -> list[str]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.env["MLFLOW_TRACKING_URI"], registry_uri=self.env["MLFLOW_REGISTRY_URI"])
        try:
            return sorted(str(v.version) for v in client.search_model_versions("name = 'tiny-mtl'"))
        except Exception:  # no registry at all
            return []


def _error(result: subprocess.CompletedProcess) -> str:
    """The line of the error that says what went wrong (the one under a summary header)."""
    lines = [" ".join(line.split()) for line in result.stderr.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return "TRACEBACK " + lines[-1][:100]
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        return f"exit {result.returncode}, no error message"
    first = lines[start].removeprefix("error:").strip()
    header = first.endswith(("rule(s) broken", "invalid parameters")) and start + 1 < len(lines)
    detail = lines[start + 1].lstrip("- ") if header else first
    return detail[:120] + ("…" if len(detail) > 120 else "")


def _clean_failure(result: subprocess.CompletedProcess, fragment: str) -> bool:
    return result.returncode == 1 and fragment in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def divergence(base: Project) -> Outcome:
    """A learning rate of 1e30: the training stops naming task, epoch and step, the last good
    training stays as it was, and register refuses weights trained under other settings."""
    project = base.copy("divergence")
    good = _files(project.root / "models/mtl")
    project.params(**{"training.lr": 1e30})
    result = project.mtl("train-mtl")
    registered = project.mtl("register")
    kept = _files(project.root / "models/mtl") == good
    ok = (
        _clean_failure(result, "training diverged")
        and kept
        and _clean_failure(registered, "trained with other")
        and project.versions() == []
    )
    observed = f"{_error(result)[:70]} · last good kept: {'yes' if kept else 'NO'}"
    return Outcome(
        "training.lr: 1e30", "stops naming task/epoch/step; last good kept; nothing registered", observed, ok
    )


def crafted_pickle(base: Project) -> Outcome:
    """A checkpoint carrying a pickle payload: refused, and the payload never runs."""
    project = base.copy("crafted")
    marker = project.root / "payload-ran"
    selection = json.loads((project.root / "reports/selection.json").read_text())
    path = project.root / "models/mtl" / selection["checkpoint"]

    class Payload:
        def __reduce__(self):  # runs `touch marker` if anything unpickles it unsafely
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"optimizer": Payload()}))
    from components.training.checkpoints import checkpoint_digest

    selection["sha256"] = checkpoint_digest(path)  # the attacker rewrites the recorded hash too
    (project.root / "reports/selection.json").write_text(json.dumps(selection))
    result = project.mtl("register")
    ok = _clean_failure(result, "refused") and not marker.exists() and project.versions() == []
    return Outcome("pickle payload in a checkpoint", "refused, payload never runs", _error(result), ok)


def swapped_weights(base: Project) -> Outcome:
    """Weights and their hash rewritten with a signing key set: register refuses them."""
    from safetensors.torch import load_file, save_file

    from components.training.checkpoints import checkpoint_digest, weights_path

    project = base.copy("signed")
    signed = project.env | {"MTL_SIGNING_KEY": "chaos-secret"}
    baselines = project.mtl("baselines", env=signed)  # select checks the baselines' signatures too
    trained = project.mtl("train-mtl", env=signed)
    selected = project.mtl("select", env=signed)
    selection = json.loads((project.root / "reports/selection.json").read_text())
    path = project.root / "models/mtl" / selection["checkpoint"]
    weights = load_file(weights_path(path))
    save_file({k: torch.zeros_like(v) for k, v in weights.items()}, weights_path(path))
    selection["sha256"] = checkpoint_digest(path)
    (project.root / "reports/selection.json").write_text(json.dumps(selection))
    result = project.mtl("register", env=signed)
    ok = (
        baselines.returncode == trained.returncode == selected.returncode == 0
        and _clean_failure(result, "signature does not match")
        and project.versions() == []
    )
    return Outcome("weights + hash rewritten, MTL_SIGNING_KEY set", "register refuses", _error(result), ok)


def concurrent_register(base: Project) -> Outcome:
    """Two registrations of one selection at once: one version, not two."""
    project = base.copy("concurrent")
    first, second = project.start("register"), project.start("register")
    codes = sorted(p.wait(timeout=600) for p in (first, second))
    busy = "is busy" in (first.stderr.read() + second.stderr.read())  # type: ignore[union-attr]
    versions = project.versions()
    ok = versions == ["1"] and codes == [0, 1] and busy
    return Outcome(
        "two `mtl register` at once", "one version; the other says busy", f"exit codes {codes}, versions {versions}", ok
    )


def rerun_register(base: Project) -> Outcome:
    """The same registration twice: the existing version comes back."""
    project = base.copy("rerun")
    first, again = project.mtl("register"), project.mtl("register")
    versions = project.versions()
    ok = first.returncode == again.returncode == 0 and versions == ["1"]
    return Outcome("the same registration twice", "the existing version, not a new one", f"versions {versions}", ok)


def lost_registry(base: Project) -> Outcome:
    """``mlflow.db`` deleted after a registration: an error, never a silent new registry."""
    project = base.copy("lost")
    project.mtl("register")
    (project.root / "mlflow.db").unlink()
    result = project.mtl("register")
    ok = _clean_failure(result, "has no model") and project.versions() == []
    return Outcome("mlflow.db deleted after a registration", "error, no silent new registry", _error(result), ok)


def _stop_mid_training(project: Project, send: Callable[[int], None]) -> tuple[int | None, int]:
    """``mtl train-mtl`` from scratch, sent ``send(pid)`` once a resume state exists before the
    last epoch; the epoch it was stopped after (None if it ended first) and its exit status."""
    from components.training.resume import state_path

    shutil.rmtree(project.root / "models/mtl")
    process = project.start("train-mtl")
    state, stopped_at = state_path(project.root / "models/mtl"), None
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if state.exists() and (epoch := torch.load(state, weights_only=True)["epoch"]) < EPOCHS:
            send(process.pid)
            stopped_at = epoch
            break
        time.sleep(0.02)
    return stopped_at, process.wait()


def sigkill_resume(base: Project) -> Outcome:
    """A training SIGKILLed mid-epoch, then run again: it resumes bit-identically."""
    project = base.copy("killed")
    killed_at, _ = _stop_mid_training(project, lambda pid: os.killpg(pid, signal.SIGKILL))
    resumed = project.mtl("train-mtl")

    def epochs(root: Path) -> list:
        return [(e["epoch"], e["sha256"]) for e in json.loads((root / "models/mtl/checkpoints.json").read_text())]

    same = resumed.returncode == 0 and epochs(project.root) == epochs(base.root)
    ok = killed_at is not None and f"resuming after epoch {killed_at}" in resumed.stdout + resumed.stderr and same
    observed = f"killed after epoch {killed_at}; resumed; checkpoints {'identical' if same else 'DIFFER'}"
    return Outcome("SIGKILL mid-training, then rerun", "resumes; bit-identical to uninterrupted", observed, ok)


def sigterm_resume(base: Project) -> Outcome:
    """``timeout -s TERM`` of a training: its runs end KILLED, and the next start resumes."""
    from mlflow.tracking import MlflowClient

    project = base.copy("terminated")
    # as `timeout` sends it: to the process, by its PID
    stopped_at, code = _stop_mid_training(project, lambda pid: os.kill(pid, signal.SIGTERM))
    client = MlflowClient(project.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tiny-mtl")
    assert experiment is not None, "the base project logged to tiny-mtl"
    running = [r.info.run_name for r in client.search_runs([experiment.experiment_id]) if r.info.status == "RUNNING"]
    resumed = project.mtl("train-mtl")
    ok = (
        stopped_at is not None
        and code == 143
        and not running
        and resumed.returncode == 0
        and f"resuming after epoch {stopped_at}" in resumed.stdout + resumed.stderr
    )
    observed = f"exit {code} after epoch {stopped_at}; runs left RUNNING: {len(running)}; resumed"
    return Outcome("SIGTERM mid-training, then rerun", "runs KILLED, exit 143; resumes", observed, ok)


def disk_full(base: Project) -> Outcome:
    """A 48 kB tmpfs on ``models/mtl``: named, nothing half written (mounting needs root)."""
    project = base.copy("disk-full")
    models = project.root / "models/mtl"
    shutil.rmtree(models)
    models.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(models)], capture_output=True)
    if mounted.returncode != 0:
        return Outcome("disk full under models/mtl", "named; nothing half written", "not run: cannot mount", None)
    try:
        result = project.mtl("train-mtl")
        left = sorted(path.name for path in models.iterdir())
    finally:
        subprocess.run(["umount", str(models)], check=True)
    ok = _clean_failure(result, "no space left on device: models/mtl") and not left
    return Outcome(
        "disk full under models/mtl", "named; nothing half written", f"{_error(result)[:80]}; left {left}", ok
    )


def corrupt_registry(base: Project) -> Outcome:
    """``mlflow.db`` truncated to 16 kB after a registration: a clear registry error."""
    project = base.copy("corrupt-registry")
    project.mtl("register")
    os.truncate(project.root / "mlflow.db", 16384)
    result = project.mtl("register")
    ok = _clean_failure(result, "cannot be read")
    return Outcome("mlflow.db truncated to 16 kB", "a registry error, no traceback", _error(result), ok)


def two_pipelines(base: Project) -> Outcome:
    """A second pipeline in a project another one holds: it exits naming the holder."""
    project = base.copy("two-pipelines")
    with hold_project(project.root) as other:
        result = project.mtl("train-mtl")
    ok = _clean_failure(result, f"PID {other.pid}")
    return Outcome("a second run in a busy project", "exits naming the holder", _error(result), ok)


def bad_data(base: Project) -> Outcome:
    """A label out of range in train: file, column, rule and an example; exit 1."""
    import pandas as pd

    project = base.copy("bad-data")
    project.mtl("register")
    frame = pd.read_parquet(project.root / "data/train.parquet")
    frame.loc[3, "left"] = 42
    frame.to_parquet(project.root / "data/train.parquet")
    result = project.mtl("validate")
    ok = _clean_failure(result, "column 'left' failed rule isin") and project.versions() == ["1"]
    return Outcome("a label out of range in train", "file, column, rule, example; exit 1", _error(result), ok)


def bad_config(base: Project) -> Outcome:
    """A misspelt gradient method: the valid ones listed; exit 1."""
    project = base.copy("bad-config")
    project.params(**{"training.gradient": "pcgard"})
    result = project.mtl("train-mtl")
    ok = _clean_failure(result, "unknown method 'pcgard'; valid: sum, normalize")
    return Outcome("training.gradient: pcgard", "lists the valid methods; exit 1", _error(result), ok)


def serving(base: Project) -> list[Outcome]:
    """The served model against a NaN pixel, 10,000 rows and one row over the limit."""
    import mlflow
    import pandas as pd
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    project = base.copy("serving")
    project.mtl("register")
    os.environ.update({k: project.env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")})
    model = mlflow.pyfunc.load_model("models:/tiny-mtl@champion")
    pixels = pd.read_parquet(project.root / "data/test.parquet").filter(like="px_").astype("float64")
    client = TestClient(scoring_server.init(model))

    def post(frame: pd.DataFrame) -> tuple[int, str, float]:
        body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}
        started = time.perf_counter()
        response = client.post(
            "/invocations", content=json.dumps(body, allow_nan=True), headers={"Content-Type": "application/json"}
        )
        return response.status_code, response.text, time.perf_counter() - started

    nan = pixels.head(3).copy()
    nan.iloc[0, 9] = float("nan")
    status, text, _ = post(nan)
    nan_ok = status == 400 and "px_0009: rule not_nullable" in text and "Failed to predict data" not in text
    big = pd.concat([pixels] * (10_000 // len(pixels) + 1), ignore_index=True)
    status_big, text_big, seconds = post(big.head(10_000))
    valid_json = status_big == 200 and "NaN" not in text_big
    status_over, text_over, _ = post(big.head(10_001))
    from components.io.serving_app import guarded_app

    guarded = TestClient(guarded_app("models:/tiny-mtl@champion"))
    noise = guarded.post("/invocations", content=os.urandom(2_000_000), headers={"Content-Type": "application/json"})
    rows = big.head(10_000)
    body = json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}})
    started = time.perf_counter()
    through_guard = guarded.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    guarded_seconds = time.perf_counter() - started
    return [
        Outcome(
            "10,000 rows through mtl serve's guard",
            "200, as served bare",
            f"{through_guard.status_code} in {guarded_seconds:.1f} s ({len(body) / 1e6:.0f} MB; {seconds:.1f} s bare)",
            through_guard.status_code == 200,
        ),
        Outcome(
            "2 MB of random bytes to mtl serve",
            "400 in a few words, no echo",
            f"{noise.status_code}, {len(noise.content)} bytes: {noise.json()['message']}",
            noise.status_code == 400 and len(noise.content) < 300,
        ),
        Outcome(
            "request with a NaN pixel",
            "400 naming column and rule, no echo",
            f"{status} {json.loads(text)['message']}",
            nan_ok,
        ),
        Outcome(
            "10,000 rows in one request",
            "200, valid JSON, well inside 60 s",
            f"{status_big} in {seconds:.1f} s = {10_000 / seconds:,.0f} rows/s",
            valid_json and seconds < 60,
        ),
        Outcome(
            "10,001 rows",
            "413 naming the limit",
            f"{status_over} {json.loads(text_over)['message'][:70]}",
            status_over == 413,
        ),
    ]


def base_project(root: Path) -> Project:
    """The tiny project every scenario copies, run up to ``select``."""
    root.mkdir(parents=True)
    raw = accepting(tiny_params_dict())
    raw["training"]["max_epochs"] = EPOCHS
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    project = Project(root)
    for stage in ("prepare", "validate", "baselines", "train-mtl", "select"):
        result = project.mtl(stage)
        if result.returncode != 0:
            raise SystemExit(f"chaos: the tiny pipeline failed at {stage}:\n{result.stderr[-2000:]}")
    return project


SCENARIOS: list[Callable[[Project], Outcome | list[Outcome]]] = [
    divergence,
    crafted_pickle,
    swapped_weights,
    concurrent_register,
    rerun_register,
    lost_registry,
    sigkill_resume,
    sigterm_resume,
    disk_full,
    corrupt_registry,
    two_pipelines,
    bad_data,
    bad_config,
    serving,
]


KeepOption = typer.Option(None, "--keep", help="Run in this folder and keep it.")


def main(keep: Path = KeepOption) -> None:
    """Runs every scenario and prints the table."""
    console = Console(width=max(Console().width, 150))
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mtl-chaos-"))
    started = time.perf_counter()
    with console.status("tiny pipeline up to select"):
        base = base_project(folder / "base")
    outcomes: list[Outcome] = []
    for scenario in SCENARIOS:
        with console.status(scenario.__name__):
            result = scenario(base)
        outcomes += result if isinstance(result, list) else [result]
    table = Table(title=f"make chaos: {len(outcomes)} scenarios in {time.perf_counter() - started:.0f} s")
    for column in ("scenario", "expected", "observed", "pass"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        shown = {True: "[green]yes", False: "[red]NO", None: "[yellow]skip"}[outcome.passed]
        table.add_row(outcome.scenario, outcome.expected, outcome.observed, shown)
    console.print(table)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    if any(outcome.passed is False for outcome in outcomes):
        raise typer.Exit(1)


if __name__ == "__main__":
    os.chdir(REPO)
    typer.run(main)

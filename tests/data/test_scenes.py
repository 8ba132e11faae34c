"""The procedural scenes: every label is what the drawn pixels say, and the files are what
prepare reads back as image input."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from components.config.base import SplitSizes
from components.config.data import ScenesConfig
from components.data.scenes import COLOURS, FAR_MM, NEAR_MM, draw_scene, write_scenes


def test_labels_agree_with_the_pixels_of_each_scene():
    rng = np.random.default_rng(3)
    palette = np.asarray(list(COLOURS.values()), dtype=float)
    for _ in range(40):
        scene = draw_scene(rng, size=48, max_objects=4)
        ground, shapes = scene.mask == 0, scene.mask > 0
        # the ground recedes from 2 m at the bottom row to 8 m at the top
        assert scene.depth_mm[-1, 0] == NEAR_MM and scene.depth_mm[0, 0] == FAR_MM
        assert (np.diff(scene.depth_mm.astype(int)[:, 0]) < 0).all()
        assert ((scene.depth_mm[shapes] > 2000) & (scene.depth_mm[shapes] < 7100)).all()
        assert set(np.unique(scene.mask)) <= {0, 1, 2, 3} and shapes.any() and ground.any()
        assert 1 <= scene.count <= 4
        # the dominant colour is the palette colour most shape pixels are a shade of
        pixels = scene.image[shapes].astype(float)
        direction = pixels / np.linalg.norm(pixels, axis=1, keepdims=True)
        nearest = (direction @ (palette / np.linalg.norm(palette, axis=1, keepdims=True)).T).argmax(axis=1)
        assert np.bincount(nearest, minlength=len(COLOURS)).argmax() == scene.colour


def test_written_scenes_are_png_files_a_manifest_names_and_the_seed_repeats_them(tmp_path):
    config = ScenesConfig(rows=SplitSizes(train=6, val=2, test=2), size=32, max_objects=3)
    frames = write_scenes(config, tmp_path / "data/scenes", tmp_path, seed=0)
    assert {split: len(frame) for split, frame in frames.items()} == {"train": 6, "val": 2, "test": 2}
    row = frames["val"].iloc[1]
    assert row["image"] == "data/scenes/val/images/val-00001.png"  # relative to the project
    manifest = pd.read_csv(tmp_path / "data/scenes/val/manifest.csv")
    assert manifest["depth"].iloc[1] == "depth/val-00001.png"  # relative to the manifest
    depth = Image.open(tmp_path / row["depth"])
    assert depth.mode.startswith("I;16") and depth.size == (32, 32)
    assert Image.open(tmp_path / row["image"]).mode == "RGB"
    assert set(frames["train"]["colour"]) <= set(COLOURS) and frames["train"]["count"].between(1, 3).all()
    again = write_scenes(config, tmp_path / "again", tmp_path, seed=0)
    first, second = (Image.open(tmp_path / f["image"].iloc[0]) for f in (frames["train"], again["train"]))
    assert np.array_equal(np.asarray(first), np.asarray(second))

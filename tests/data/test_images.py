"""Image input from manifests: prepare decodes each file once, cropped to data.image_size,
into an array training memory-maps, and names the row, column and file of any it cannot use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.config import Params
from components.data.images import images_path
from components.jobs import prepare
from components.validation.report import DataValidationError
from tests.helpers.projects import images_dict


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path, images_dict(tmp_path)


def test_prepare_decodes_rgb_files_of_any_shape_into_one_array_per_split(project):
    root, raw = project
    raw["data"]["input"]["channels"] = "grey"
    prepare.run(Params.model_validate(raw), root)
    images = np.load(images_path(root / "data", "val"), mmap_mode="r")
    assert images.shape == (30, 1, 32, 32) and images.dtype == np.uint8  # 40x48 RGB: cropped, greyscale
    frame = pd.read_parquet(root / "data/val.parquet")
    assert frame["image"].iloc[0] == "raw/val/images/val-0000.png"  # relative to the project now
    first = Image.open(root / frame["image"].iloc[0]).convert("L").resize((32, 38)).crop((0, 3, 32, 35))
    assert np.abs(images[0, 0].astype(int) - np.asarray(first, dtype=int)).mean() < 8  # the centre crop
    mask = np.asarray(frame["mask"].iloc[0])
    assert mask.shape == (32 * 32,) and set(np.unique(mask)) <= {0, 1, 2} and (mask > 0).any()
    depth = np.asarray(frame["depth"].iloc[0])
    assert np.all(depth[mask > 0] == 1.0)  # the shape 1 m away, cropped and resized with its mask


def test_missing_corrupt_and_mis_sized_files_are_named_by_row_column_and_file(project):
    root, raw = project
    (root / "raw/train/images/train-0003.png").unlink()
    (root / "raw/train/images/train-0005.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    Image.new("L", (10, 10)).save(root / "raw/train/masks/train-0007.png")
    with pytest.raises(DataValidationError) as failed:
        prepare.run(Params.model_validate(raw), root)
    message = str(failed.value)
    assert "raw/train/manifest.csv: column 'image' failed rule image_file_exists (1 failing)" in message
    assert f"id=train-0003: {root}/raw/train/images/train-0003.png not found" in message
    assert "column 'image' failed rule readable_image_file (1 failing) e.g. id=train-0005:" in message
    assert "column 'mask' failed rule mask_size_matches_its_image (1 failing)" in message
    assert "train-0007.png is 10x10, its image 40x48 [setting: data.files]" in message
    assert not (root / "data/train.parquet").exists()  # nothing downstream of a failed prepare


def test_replacing_an_image_a_manifest_names_changes_the_sources_fingerprint(project):
    import os

    from components.jobs import sources

    root, raw = project
    params = Params.model_validate(raw)
    before = sources.fingerprint(params, root)
    image = root / "raw/val/images/val-0002.png"
    Image.new("RGB", (40, 48), (1, 2, 3)).save(image)
    os.utime(image, ns=(1, 1))  # a rewrite within the same tick still differs by its new size or time
    after = sources.fingerprint(params, root)
    key = "val: raw/val/*"
    assert before[key] != after[key] and before["val: raw/val/manifest.csv"] == after["val: raw/val/manifest.csv"]

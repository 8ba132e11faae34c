"""``data.augment``: random changes to each training batch's images, with every per-pixel
target (segmentation masks, depth maps) moved alike, by kornia's ``AugmentationSequential``.

Masks and depth maps travel as kornia masks: resampled by nearest neighbour, so a class
stays a class and a depth a measured depth, and padded with 0, which each task reads as
"no label" (:meth:`~components.tasks.base.Task.as_moving_map`). Intensity steps
(brightness) change the image alone. The draws come from torch's generator, which the
training seeds.

Example::

    >>> from components.config import TaskConfig
    >>> from components.config.data import HorizontalFlip
    >>> from components.tasks import build_tasks
    >>> tasks = build_tasks({"mask": TaskConfig(type="segmentation", label="mask", num_classes=2)})
    >>> augment = JointAugmentation([HorizontalFlip(name="horizontal_flip", p=1.0)], tasks)
    >>> image, mask = torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[0, 1]]])
    >>> moved, (moved_mask,) = augment(image, [mask])
    >>> moved.flatten().tolist(), moved_mask.flatten().tolist()
    ([1.0, 0.0], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from components.config.data import Affine, AugmentStep, Brightness, HorizontalFlip, ResizedCrop, VerticalFlip
from components.tasks import Task


def kornia_step(step: AugmentStep, side: int) -> Any:
    """The kornia augmentation of one configured step, for images ``side`` pixels square."""
    import kornia.augmentation as K  # here: a run without data.augment never imports it

    if isinstance(step, HorizontalFlip):
        return K.RandomHorizontalFlip(p=step.p)
    if isinstance(step, VerticalFlip):
        return K.RandomVerticalFlip(p=step.p)
    if isinstance(step, Affine):
        return K.RandomAffine(
            degrees=step.degrees,
            translate=(step.translate, step.translate),
            scale=(step.scale[0], step.scale[1]),
            p=step.p,
        )
    if isinstance(step, ResizedCrop):
        return K.RandomResizedCrop((side, side), scale=(step.scale[0], step.scale[1]), p=step.p)
    assert isinstance(step, Brightness)
    return K.RandomBrightness(brightness=(1 - step.max_change, 1 + step.max_change), p=step.p)


class JointAugmentation:
    """Applies the configured steps to a batch of images (rows, channels, H, W) and moves
    the per-pixel targets of ``tasks`` (given in the same order) with them."""

    def __init__(self, steps: Sequence[AugmentStep], tasks: dict[str, Task]) -> None:
        self.steps = list(steps)
        self.tasks = list(tasks.values())
        self._pipeline: Any = None

    def __call__(self, images: Tensor, targets: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        maps = {index: task.as_moving_map(target) for index, (task, target) in enumerate(zip(self.tasks, targets))}
        moving = {index: m for index, m in maps.items() if m is not None}
        if self._pipeline is None:
            import kornia.augmentation as K

            self._pipeline = K.AugmentationSequential(
                *(kornia_step(step, images.shape[-1]) for step in self.steps),
                data_keys=["input", *(["mask"] * len(moving))],
            )
        with torch.no_grad():
            out = self._pipeline(images, *moving.values())
        moved_images, *moved_maps = out if moving else [out]
        moved = dict(zip(moving, moved_maps))
        return moved_images, [
            self.tasks[index].from_moving_map(moved[index]) if index in moved else target
            for index, target in enumerate(targets)
        ]

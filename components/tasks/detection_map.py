"""COCO mean average precision of ``detection`` tasks, by pycocotools' ``COCOeval``.

Apart from ``components/tasks/detection.py`` so that a stage that never scores a detection task
does not import torchmetrics (seconds of start-up per stage process); the task imports it
when it builds its metrics.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
import torchmetrics
from torch import Tensor


class COCOMeanAveragePrecision(torchmetrics.Metric):
    """COCO box mAP over every image seen, by pycocotools.

    ``update`` takes predictions (batch, slots, 7: x1 y1 x2 y2, class, score, object
    probability) and targets (batch, slots, 5: x1 y1 x2 y2, class, ``NO_OBJECT`` in empty
    slots), both in the same units; every slot is a scored detection, as COCO expects.
    """

    full_state_update = False
    predictions: list[Tensor]
    targets: list[Tensor]

    def __init__(self, iou: str = "map") -> None:
        super().__init__()
        self.iou = iou
        self.add_state("predictions", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        self.predictions.append(prediction.detach().float().cpu())
        self.targets.append(target.detach().float().cpu())

    def compute(self) -> Tensor:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        predictions = torch.cat(self.predictions) if self.predictions else torch.zeros(0, 1, 7)
        targets = torch.cat(self.targets) if self.targets else torch.zeros(0, 1, 5)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        detections: list[dict[str, Any]] = []
        classes = {int(c) for c in targets[..., 4].flatten().tolist() if c >= 0}
        for image, (found, gold) in enumerate(zip(predictions.tolist(), targets.tolist())):
            images.append({"id": image})
            for x1, y1, x2, y2, label in gold:
                if label >= 0:
                    box = [x1, y1, x2 - x1, y2 - y1]
                    annotations.append(
                        {"id": len(annotations) + 1, "image_id": image, "category_id": int(label) + 1,
                         "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
                    )  # fmt: skip
            for x1, y1, x2, y2, label, score, _ in found:
                detections.append(
                    {
                        "image_id": image,
                        "category_id": int(label) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
        if not annotations or not detections:
            return torch.tensor(0.0)
        gold_set = COCO()
        gold_set.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c + 1} for c in sorted(classes | {int(d["category_id"]) - 1 for d in detections})],
        }
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            gold_set.createIndex()
            evaluation = COCOeval(gold_set, gold_set.loadRes(detections), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        value = evaluation.stats[0 if self.iou == "map" else 1]
        return torch.tensor(max(float(value), 0.0))  # COCOeval reports -1 where nothing applies

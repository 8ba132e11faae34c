"""``detection``: boxes and classes of up to ``max_objects`` objects per image.

Reads ``pixels`` input through the backbone's pooled vector. Head: ``max_objects`` slots,
each a box (centre, width and height as fractions of the image, through a sigmoid) and
``num_classes`` + 1 class scores, the last meaning "no object" (a set-prediction head after
Carion et al. 2020, "End-to-End Object Detection with Transformers", without the
transformer). Loss: slots are matched one to one to the gold objects by the Hungarian
algorithm (``scipy.optimize.linear_sum_assignment``) on L1 box distance minus class
probability; matched slots pay L1 on their box and cross-entropy on their class, the rest
cross-entropy towards "no object". Metrics: COCO mAP@[.5:.95] (primary) and mAP@.5 by
pycocotools' ``COCOeval``, the reference implementation (torchmetrics'
``MeanAveragePrecision`` wraps the same code but needs a torchvision build matching the
CPU torch, which the registry does not have). Label: [boxes column, classes column]: a flat
list x1, y1, x2, y2 per object in pixels, and the objects' class ids. Served answer: a list
of ``{"box": [x1, y1, x2, y2], "class": c, "score": s}``, the slots that found an object.

Example: a perfect answer scores 1::

    >>> from components.config import TaskConfig
    >>> task = DetectionTask("digits", TaskConfig(type="detection", label=["boxes", "box_classes"],
    ...                                           num_classes=10, max_objects=2))
    >>> gold = torch.tensor([[[0.1, 0.1, 0.5, 0.6, 3.0], [0.4, 0.3, 0.9, 0.9, 7.0]]])  # box, class
    >>> perfect = torch.cat([gold[..., :4], gold[..., 4:], torch.ones(1, 2, 2)], dim=-1)  # + score, object
    >>> task.score(perfect, gold)["map"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, Params, TaskConfig
from components.config.data import GEOMETRIC_STEPS
from components.data.encoders import InputEncoder, canvas_side, is_missing
from components.tasks.base import LabelSchema, Task, is_list

if TYPE_CHECKING:
    import torchmetrics

#: the class column of a target slot that holds no object
NO_OBJECT = -1.0


class DetectionHead(nn.Module):
    """``slots`` × (4 box parameters + ``classes`` + 1 scores) from the pooled features."""

    def __init__(self, in_features: int, slots: int, classes: int) -> None:
        super().__init__()
        self.slots, self.classes = slots, classes
        self.project = nn.Linear(in_features, slots * (4 + classes + 1))

    def forward(self, features: Tensor) -> Tensor:
        """(batch, slots, 4 + classes + 1): boxes as (cx, cy, w, h) fractions, then logits."""
        out = self.project(features).view(len(features), self.slots, 4 + self.classes + 1)
        return torch.cat([torch.sigmoid(out[..., :4]), out[..., 4:]], dim=-1)


def corners(boxes: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2), in the same units."""
    centre, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


class DetectionTask(Task):
    type_name = "detection"
    # a format string (describe_answer): braces doubled
    answer_description = 'a list of {{"box": [x1, y1, x2, y2] in pixels, "class", "score"}}, one per object found'
    metric_name = "map"
    higher_is_better = True
    reads_input = ("pixels",)
    label_count = 2
    keys = frozenset({"num_classes", "max_objects"})

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if len(config.label) != 2:
            raise ValueError("a detection task takes two label columns: [boxes, classes]")
        if config.num_classes is None or config.max_objects is None:
            raise ValueError("a detection task needs num_classes and max_objects")

    @classmethod
    def check_fits(cls, name: str, params: Params) -> None:
        super().check_fits(name, params)
        if params.model.backbone not in ("cnn", "mlp", "hf_backbone"):
            raise ValueError("detection reads images: use the cnn, mlp or hf_backbone backbone")
        moving = [step.name for step in params.data.augment if step.name in GEOMETRIC_STEPS]
        if moving:
            raise ValueError(
                f"data.augment's {', '.join(moving)} move the image, and detection boxes do not move with it yet: "
                f"keep data.augment to brightness with a detection task"
            )

    @property
    def slots(self) -> int:
        assert self.config.max_objects is not None, "check_config guarantees it"
        return self.config.max_objects

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        boxes, classes = self.columns
        most, count = self.slots, self.num_classes

        def valid_boxes(value: Any) -> bool:
            if not is_list(value) or len(value) % 4 or len(value) > 4 * most:
                return False
            quads = np.asarray(value, dtype=float).reshape(-1, 4)
            inside = (quads >= 0).all() and (quads <= canvas_size).all()
            return bool(inside and (quads[:, 2] > quads[:, 0]).all() and (quads[:, 3] > quads[:, 1]).all())

        def one_class_per_box(frame: pd.DataFrame) -> pd.Series:
            def holds(row: pd.Series) -> bool:
                if is_missing(row[boxes]) or is_missing(row[classes]):
                    return is_missing(row[boxes]) and is_missing(row[classes])
                return len(row[classes]) * 4 == len(row[boxes])

            return frame.apply(holds, axis=1)

        columns = {
            boxes: pa.Column(
                object,
                pa.Check(valid_boxes, element_wise=True, name=f"at_most_{most}_boxes_x1<x2,y1<y2_in[0,{canvas_size}]"),
                nullable=True,
            ),
            classes: pa.Column(
                object,
                pa.Check(
                    lambda v: is_list(v) and all(0 <= int(c) < count for c in v),
                    element_wise=True,
                    name=f"class_ids_in[0..{count - 1}]",
                ),
                nullable=True,
            ),
        }
        return LabelSchema(columns, [(pa.Check(one_class_per_box, name="one_class_per_box"), [boxes, classes])])

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        """(rows, slots, 5): boxes as fractions of the image, then the class; empty slots
        and unlabeled rows hold ``NO_OBJECT``."""
        side = canvas_side(frame)
        target = torch.full((len(frame), self.slots, 5), NO_OBJECT)
        boxes, classes = self.columns
        for row, (box_list, class_list) in enumerate(zip(frame[boxes], frame[classes])):
            if is_missing(box_list) or is_missing(class_list):
                continue
            quads = torch.tensor(np.asarray(box_list, dtype=np.float32).reshape(-1, 4)) / side
            target[row, : len(quads), :4] = quads
            target[row, : len(quads), 4] = torch.tensor(np.asarray(class_list, dtype=np.float32))
        return target

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return DetectionHead(in_features, self.slots, self.num_classes)

    def labeled(self, target: Tensor) -> Tensor:
        return (target[..., 4] >= 0).any(dim=1)

    def _match(self, output: Tensor, target: Tensor) -> Tensor:
        """For each image, the gold object each slot takes (-1: none), by the Hungarian
        algorithm on L1 box distance minus the slot's probability of the gold class."""
        from scipy.optimize import linear_sum_assignment  # here: a served model that only predicts needs no scipy

        boxes = corners(output[..., :4]).detach()
        probabilities = output[..., 4:].detach().softmax(-1)
        assignment = torch.full(target.shape[:2], -1, dtype=torch.long)
        for image in range(len(target)):
            gold = (target[image, :, 4] >= 0).nonzero().flatten()
            if not len(gold):
                continue
            distance = torch.cdist(boxes[image], target[image, gold, :4], p=1)
            cost = distance - probabilities[image][:, target[image, gold, 4].long()]
            slots, objects = linear_sum_assignment(cost.cpu().numpy())
            assignment[image, torch.as_tensor(slots)] = gold[torch.as_tensor(objects)].cpu()
        return assignment.to(output.device)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        assignment = self._match(output, target)
        matched = assignment >= 0
        gold = torch.gather(target, 1, assignment.clamp_min(0).unsqueeze(-1).expand(-1, -1, 5))
        classes = torch.where(matched, gold[..., 4].long(), torch.full_like(assignment, self.num_classes))
        classification = F.cross_entropy(output[..., 4:].flatten(0, 1), classes.flatten())
        box = F.l1_loss(corners(output[..., :4])[matched], gold[..., :4][matched]) if matched.any() else 0.0
        return classification + 5.0 * box  # DETR's weights for L1 and class terms

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        from components.tasks.detection_map import COCOMeanAveragePrecision

        return {"map": COCOMeanAveragePrecision("map"), "map_50": COCOMeanAveragePrecision("map_50")}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        """(rows, slots, 7): x1 y1 x2 y2 as fractions, the best real class, its probability,
        and the probability that the slot holds an object at all."""
        probabilities = output[..., 4:].softmax(-1)
        score, label = probabilities[..., :-1].max(-1)
        present = 1 - probabilities[..., -1]
        return torch.cat(
            [corners(output[..., :4]), label.unsqueeze(-1).float(), score.unsqueeze(-1), present.unsqueeze(-1)], dim=-1
        )

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        side = canvas_side(own)
        answers = []
        for row in rows:
            found = [slot for slot in prediction[row].tolist() if slot[6] >= 0.5]
            answers.append(
                [
                    {"box": [round(v * side, 1) for v in slot[:4]], "class": int(slot[4]), "score": round(slot[5], 4)}
                    for slot in found
                ]
            )
        return answers

"""SQuAD exact match and F1 of ``span`` tasks, by torchmetrics' SQuAD metric.

Apart from ``components/tasks/span.py`` so that a stage that never scores a span task
does not import torchmetrics (seconds of start-up per stage process); the task imports it
when it builds its metrics.
"""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import Tensor
from torchmetrics.text import SQuAD


class SQuADSpanScore(torchmetrics.Metric):
    """SQuAD exact match or F1 (in 0..1) of predicted (start, end) token spans, computed by
    torchmetrics' SQuAD metric on the spans written as their token positions.

    Prediction and gold index the same tokens, so this is SQuAD's bag-of-tokens F1 over
    sub-word tokens rather than over normalised words; (0, 0) is "no answer" (SQuAD 2.0):
    it matches only another "no answer".
    """

    full_state_update = False

    def __init__(self, score: str = "f1") -> None:
        super().__init__()
        self.score = score
        self.squad = SQuAD()

    @staticmethod
    def _as_text(span: list[int]) -> str:
        start, end = span
        return "" if start == 0 else " ".join(str(position) for position in range(start, end + 1))

    def update(self, prediction: Tensor, target: Tensor) -> None:
        offset = int(self.squad.total)
        predictions: list[dict[str, Any]] = []
        targets: list[dict[str, Any]] = []
        for row, (predicted, gold) in enumerate(zip(prediction.tolist(), target.tolist())):
            key = str(offset + row)
            predictions.append({"prediction_text": self._as_text(predicted), "id": key})
            targets.append({"answers": {"answer_start": [gold[0]], "text": [self._as_text(gold)]}, "id": key})
        self.squad.update(predictions, targets)

    def compute(self) -> Tensor:
        if int(self.squad.total) == 0:
            return torch.tensor(0.0)
        return self.squad.compute()[self.score] / 100.0

    def reset(self) -> None:
        super().reset()
        self.squad.reset()

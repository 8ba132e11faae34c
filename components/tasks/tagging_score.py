"""Entity-level F1 and token accuracy of ``tagging`` tasks, by seqeval.

Apart from ``components/tasks/tagging.py`` so that a stage that never scores a tagging task
does not import torchmetrics (seconds of start-up per stage process); the task imports it
when it builds its metrics.
"""

from __future__ import annotations

import torch
import torchmetrics
from torch import Tensor

from components.data.encoders import IGNORE


class SeqevalScore(torchmetrics.Metric):
    """Entity-level F1 (``score="f1"``) or token accuracy of BIO tag sequences, scored by
    seqeval (CoNLL rules: an entity counts only when its type and both boundaries match).

    Updated with (B, L) predicted and gold tag indices, ``IGNORE`` where a position is no
    word's first sub-word; only word positions form the sequences seqeval scores.
    """

    full_state_update = False
    predicted: list[Tensor]
    gold: list[Tensor]
    lengths: list[Tensor]

    def __init__(self, tags: list[str], score: str = "f1") -> None:
        super().__init__()
        self.tags, self.score = list(tags), score
        self.add_state("predicted", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")
        self.add_state("lengths", default=[], dist_reduce_fx="cat")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        words = target != IGNORE
        self.predicted.append(prediction[words])
        self.gold.append(target[words])
        self.lengths.append(words.sum(dim=1))

    def compute(self) -> Tensor:
        from seqeval.metrics import accuracy_score, f1_score

        if not self.lengths:
            return torch.tensor(0.0)
        bounds = [0, *torch.cat(self.lengths).cumsum(0).tolist()]  # each sentence's slice of the flat tags

        def sentences(flat: Tensor) -> list[list[str]]:
            names = [self.tags[i] for i in flat.tolist()]
            return [names[a:b] for a, b in zip(bounds, bounds[1:])]

        predicted, gold = sentences(torch.cat(self.predicted)), sentences(torch.cat(self.gold))
        if self.score == "accuracy":
            return torch.tensor(float(accuracy_score(gold, predicted)))
        return torch.tensor(float(f1_score(gold, predicted, zero_division=0)))

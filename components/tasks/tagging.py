"""``tagging``: one BIO tag per word, e.g. named entities (CoNLL-2003).

Reads ``tokens`` input (a column of word lists). Each word's tag sits on its first
sub-word token; other sub-words, specials and padding are ``IGNORE``. Head: a linear
layer at every token. Loss: token cross-entropy over tagged positions. Metrics:
entity-level F1 (primary) and token accuracy, scored by seqeval under CoNLL rules.
Served answer: one tag per word.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = TaggingTask("ner", TaskConfig(type="tagging", label="tags", tags=["O", "B-PER", "I-PER"]))
    >>> gold = torch.tensor([[0, 1, 2, -1]])                  # O B-PER I-PER, padding
    >>> task.score(torch.tensor([[0, 1, 2, 0]]), gold)["entity_f1"]
    1.0
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pandas as pd
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, TaskConfig
from components.data.encoders import IGNORE, InputEncoder, TextEncoder
from components.tasks.base import LabelSchema, Task, is_list

if TYPE_CHECKING:
    import torchmetrics


class TaggingTask(Task):
    type_name = "tagging"
    answer_description = "one tag per word, from {tags}"
    metric_name = "entity_f1"
    higher_is_better = True
    dense = True
    reads_input = ("tokens",)
    keys = frozenset({"tags"})

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if config.tags is None:
            raise ValueError("a tagging task needs its tags")
        malformed = [tag for tag in config.tags if tag != "O" and not re.fullmatch(r"[BIES]-\S+", tag)]
        if malformed or "O" not in config.tags or len(set(config.tags)) != len(config.tags):
            raise ValueError(f"tags must be distinct BIO tags (O, B-TYPE, I-TYPE) and include O; not BIO: {malformed}")

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        tags, words, column = set(self.tags), spec.columns[0], self.column
        valid = pa.Check(lambda v: is_list(v) and set(v) <= tags, element_wise=True, name=f"tags_in{sorted(tags)}")

        def one_tag_per_word(frame: pd.DataFrame) -> pd.Series:
            labeled = frame[column].map(is_list)
            return ~labeled | frame.apply(
                lambda row: is_list(row[words]) and len(row[words]) == len(row[column]), axis=1
            )

        check = pa.Check(one_tag_per_word, name=f"one_tag_per_word({column})")
        return LabelSchema({column: pa.Column(object, valid, nullable=True)}, [(check, [words, column])])

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        def aligned(text: InputEncoder, rows: pd.DataFrame) -> Tensor:
            assert isinstance(text, TextEncoder)
            return text.word_tag_targets(rows, self.column, self.tags)

        return self.on_own_rows(frame, encoder, aligned)

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, len(self.tags))  # applied at every token

    def labeled(self, target: Tensor) -> Tensor:
        return (target != IGNORE).any(dim=1)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.flatten(0, 1), target.flatten(), ignore_index=IGNORE)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        from components.tasks.tagging_score import SeqevalScore

        return {
            "entity_f1": SeqevalScore(self.tags),
            "token_accuracy": SeqevalScore(self.tags, "accuracy"),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        assert isinstance(encoder, TextEncoder)
        tags = self.tags
        return [
            [tags[i] for i in prediction[row, positions].tolist()]
            for row, positions in zip(rows, encoder.first_subwords(own))
        ]

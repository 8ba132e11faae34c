"""``span``: the answer to a question as a (start, end) token span of the context (SQuAD).

Reads ``text_pair`` input (question, context); ``label`` is [answer start column, answer
text column]. The answer's characters are mapped to context tokens; (0, 0), the [CLS]
position, means "no answer" (SQuAD 2.0). Head: start and end logits at every token. Loss:
mean of the two cross-entropies. Metrics: SQuAD F1 (primary) and exact match from
torchmetrics, on token spans. Served answer: the context text of the best span with
start <= end < start + ``MAX_ANSWER_TOKENS``, "" for none.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = SpanTask("qa", TaskConfig(type="span", label=["answer_start", "answer_text"]))
    >>> round(task.score(torch.tensor([[3, 4], [0, 0]]), torch.tensor([[3, 5], [0, 0]]))["f1"], 4)  # (0.8 + 1) / 2
    0.9
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, TaskConfig
from components.data.encoders import IGNORE, InputEncoder, TextEncoder
from components.tasks.base import LabelSchema, Task

if TYPE_CHECKING:
    import torchmetrics

MAX_ANSWER_TOKENS = 30  # the longest span a span head predicts, as in BERT's SQuAD evaluation


class SpanTask(Task):
    type_name = "span"
    answer_description = "the answer text taken from the context, empty when there is none"
    metric_name = "f1"
    higher_is_better = True
    dense = True
    reads_input = ("text_pair",)
    label_count = 2

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if len(config.label) != 2:
            raise ValueError("a span task takes two label columns: [answer start, answer text]")

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        start, text = self.columns
        context = spec.columns[1]

        def answer_in_context(frame: pd.DataFrame) -> pd.Series:
            def holds(row: pd.Series) -> bool:
                if pd.isna(row[start]) or pd.isna(row[text]):
                    return pd.isna(row[start]) and (pd.isna(row[text]) or row[text] == "")
                begin = int(row[start])
                return str(row[context])[begin : begin + len(str(row[text]))] == str(row[text])

            return frame.apply(holds, axis=1)

        check = pa.Check(answer_in_context, name=f"answer_text_at_answer_start({text})")
        columns = {start: pa.Column("Int64", pa.Check.ge(0), nullable=True), text: pa.Column(str, nullable=True)}
        return LabelSchema(columns, [(check, [start, text, context])])

    def required_label_columns(self) -> list[str]:
        """The answer text: the start stays null for an unanswerable question (SQuAD 2.0),
        whose answer text is "" instead."""
        return [self.columns[1]]

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        def aligned(text: InputEncoder, rows: pd.DataFrame) -> Tensor:
            assert isinstance(text, TextEncoder)
            return text.answer_targets(rows, *self.columns)

        return self.on_own_rows(frame, encoder, aligned)

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, 2)  # start and end logit at every token

    def labeled(self, target: Tensor) -> Tensor:
        return target[:, 0] != IGNORE

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return (F.cross_entropy(output[..., 0], target[:, 0]) + F.cross_entropy(output[..., 1], target[:, 1])) / 2

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        from components.tasks.span_score import SQuADSpanScore

        return {"f1": SQuADSpanScore("f1"), "exact_match": SQuADSpanScore("exact_match")}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        """The best-scoring span with start <= end < start + ``MAX_ANSWER_TOKENS``."""
        start, end = output[..., 0], output[..., 1]
        length = start.shape[1]
        scores = start.unsqueeze(2) + end.unsqueeze(1)  # (B, start, end)
        allowed = torch.ones(length, length, dtype=torch.bool, device=output.device).triu()
        allowed &= ~torch.ones_like(allowed).triu(MAX_ANSWER_TOKENS)
        best = scores.masked_fill(~allowed, float("-inf")).flatten(1).argmax(dim=1)
        return torch.stack([best // length, best % length], dim=1)

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        assert isinstance(encoder, TextEncoder)
        return list(encoder.answer_texts(own, prediction[rows]))

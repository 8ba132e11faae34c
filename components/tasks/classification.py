"""``classification``: one class out of ``num_classes`` per row.

Head: a linear layer. Loss: cross-entropy. Metrics: accuracy (primary) and macro-F1 from
torchmetrics. A missing label (empty cell) is ``MISSING_CLASS`` and skipped. Validation:
labels in 0..num_classes-1, and each class holds between ``validation.min_class_share``
and ``max_class_share`` of a split.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = ClassificationTask("digit", TaskConfig(type="classification", label="digit", num_classes=3))
    >>> task.score(torch.tensor([0, 2, 1]), torch.tensor([0, 2, -1]))["accuracy"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, TaskConfig
from components.data.encoders import InputEncoder
from components.tasks.base import MISSING_CLASS, LabelSchema, Task

if TYPE_CHECKING:
    import torchmetrics


class ClassificationTask(Task):
    type_name = "classification"
    answer_description = "the class id, 0 to {num_classes_minus_one}"
    metric_name = "accuracy"
    higher_is_better = True
    keys = frozenset({"num_classes", "classes", "other_class", "min_class_share", "max_class_share"})

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if config.num_classes is None and config.classes is None:
            raise ValueError("a classification task needs num_classes (labels 0..K-1) or classes (label names)")
        if config.classes is not None:
            if len(config.classes) < 2 or len(set(config.classes)) != len(config.classes):
                raise ValueError(f"classes must name at least 2 distinct labels (got {config.classes})")
            if config.num_classes is not None and config.num_classes != len(config.classes):
                raise ValueError(f"num_classes is {config.num_classes} but classes names {len(config.classes)}")
        if config.other_class is not None and config.other_class not in (config.classes or []):
            raise ValueError(f"other_class {config.other_class!r} must be one of classes {config.classes}")

    @property
    def num_classes(self) -> int:
        """``num_classes``, or how many ``classes`` are named."""
        return len(self.config.classes) if self.config.classes else super().num_classes

    def describe_answer(self) -> str:
        if self.config.classes:
            return f"the class name, one of {', '.join(self.config.classes)}"
        return super().describe_answer()

    def label_ids(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Label names (``classes``) as ids 0.. in their order; a value that is not one of
        them counts as ``other_class``, or without one is refused with up to five of them and
        their row ids."""
        names = self.config.classes
        if not names or self.column not in frame.columns:
            return frame
        values = frame[self.column]
        if pd.api.types.is_float_dtype(values) and bool((values.dropna() % 1 == 0).all()):
            values = values.astype("Int64")  # whole numbers read as floats (a column with gaps): 3, not "3.0"
        text = values.where(values.isna(), values.astype(str))
        unknown = text.notna() & ~text.isin(names)
        if self.config.other_class is not None:
            text = text.where(~unknown, self.config.other_class)
        elif unknown.any():
            shown = ", ".join(f"id={i} value={v!r}" for i, v in zip(frame["id"][unknown][:5], text[unknown][:5]))
            raise ValueError(f"{int(unknown.sum())} label(s) not among classes {names}: {shown}")
        ids = text.map({name: index for index, name in enumerate(names)})
        return frame.assign(**{self.column: ids.astype("Int64")})

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        ids = super().row_answers(prediction, rows, own, encoder)
        names = self.config.classes
        return [names[i] for i in ids] if names else ids

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        classes = list(range(self.num_classes))
        return LabelSchema({self.column: pa.Column("Int64", pa.Check.isin(classes), nullable=True)})

    def expectations(self, min_share: float, max_share: float, where: dict[str, Any]) -> list[Any]:
        import great_expectations.expectations as gxe

        found: list[Any] = []
        for label in range(self.num_classes):
            # share of `label` >= min_share and <= max_share; the descriptions say so in
            # Data Docs, whose own wording ("89.7% unexpected") reads like a failure
            found.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=self.column,
                    value_set=[label],
                    mostly=min_share,
                    description=f"class {label} is at least {min_share:.0%} of the rows",
                    **where,
                )
            )
            found.append(
                gxe.ExpectColumnValuesToNotBeInSet(
                    column=self.column,
                    value_set=[label],
                    mostly=1.0 - max_share,
                    description=f"class {label} is at most {max_share:.0%} of the rows",
                    **where,
                )
            )
        return found

    def shift_expectations(
        self, reference: pd.DataFrame, rows: int, max_divergence: float, where: dict[str, Any]
    ) -> list[Any]:
        """KL divergence of the split's class shares from the training split's, at most
        ``max_divergence`` plus what sampling alone gives: for two samples of one
        distribution, 2·n·KL follows χ² with (classes - 1) degrees of freedom (the G-test),
        n = rows·train rows / (rows + train rows); its 99.9th percentile is allowed."""
        import great_expectations.expectations as gxe
        from scipy.stats import chi2

        shares = reference[self.column].dropna().astype(int).value_counts(normalize=True).sort_index()
        if shares.empty or rows == 0:  # an empty split fails its row count; no distribution to compare
            return []
        # a class the training split lacks gets the weight the rule of succession gives an unseen
        # outcome, 1 / (n + 1), not 0 (an infinite divergence, which GX reports as None):
        # coverage_warnings names such classes instead
        unseen_weight = 1 / (len(reference) + 1)
        effective_rows = rows * len(reference) / max(rows + len(reference), 1)
        noise = float(chi2.ppf(0.999, max(len(shares) - 1, 1))) / (2 * max(effective_rows, 1))
        threshold = round(max_divergence + noise, 4)
        return [
            gxe.ExpectColumnKLDivergenceToBeLessThan(
                column=self.column,
                partition_object={"values": shares.index.tolist(), "weights": shares.tolist()},
                tail_weight_holdout=unseen_weight,
                threshold=threshold,
                description=(
                    f"classes are distributed as in the training split (KL divergence < {threshold}: "
                    f"validation.max_label_divergence {max_divergence} + {noise:.4f} for sampling)"
                ),
                **where,
            )
        ]

    def class_name(self, label: int) -> str:
        """Class id ``label`` as users name it (its entry in ``classes``, else the id)."""
        return self.config.classes[label] if self.config.classes else str(label)

    def coverage_warnings(self, frames: dict[str, pd.DataFrame]) -> list[str]:
        """Each class some split lacks, in words: one training never sees cannot be learnt,
        and one absent from val or test goes unmeasured there."""
        counts = {
            split: frame[self.column].dropna().astype(int).value_counts()
            for split, frame in frames.items()
            if self.column in frame.columns
        }
        warnings = []
        for label in sorted(set().union(*(c.index for c in counts.values()))):
            held = {split: int(c.get(label, 0)) for split, c in counts.items()}
            absent = [split for split, rows in held.items() if rows == 0]
            if not absent:
                continue
            present = ", ".join(f"{rows:,} in {split}" for split, rows in held.items() if rows)
            effect = "the model cannot learn it" if "train" in absent else "its score there is unmeasured"
            fold = f"fold rare classes into tasks.{self.name}.other_class, or " if "other_class" in self.keys else ""
            warnings.append(
                f"tasks.{self.name}: class {self.class_name(label)!r} ({present}) is not in {' or '.join(absent)}: "
                f"{effect}; {fold}re-split"
            )
        return warnings

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        return torch.tensor(frame[self.column].fillna(MISSING_CLASS).to_numpy().astype(np.int64))

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, self.num_classes)

    def labeled(self, target: Tensor) -> Tensor:
        return target != MISSING_CLASS

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        import torchmetrics  # here: a stage that scores nothing never pays its import

        classes = self.num_classes
        return {
            "accuracy": torchmetrics.classification.MulticlassAccuracy(classes, average="micro"),
            "macro_f1": torchmetrics.classification.MulticlassF1Score(classes, average="macro"),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """[correct, labeled] per row: accuracy is their ratio."""
        labeled = self.labeled(target)
        return torch.stack([(prediction == target) & labeled, labeled], dim=-1).float()

    def metric_from_statistics(self, sums: Tensor) -> Tensor:
        return sums[..., 0] / sums[..., 1]

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """The majority class of the training split."""
        labeled = train_target[self.labeled(train_target)]
        return torch.full((rows,), int(labeled.mode().values), dtype=torch.long) if len(labeled) else None

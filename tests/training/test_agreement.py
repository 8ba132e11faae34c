"""Gradient agreement between tasks, measured during real training on tiny data."""

from pathlib import Path

import pytest
import torch

from components.config import MLPConfig, TaskConfig, TrainingConfig
from components.models.backbones import MLPBackbone
from components.models.sharing import HardSharingModel
from components.tasks import build_tasks
from components.training.agreement import GradientAgreement
from components.training.loader import TensorSplit
from components.training.loop import EpochRecord, train


def test_a_task_without_labeled_rows_is_not_counted_and_sampling_follows_every():
    agreement = GradientAgreement(["a", "b", "c"], every=3)
    assert [agreement.due(step) for step in range(1, 8)] == [True, False, False, True, False, False, True]
    agreement.record(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.1]]))  # b had no labeled rows
    agreement.record(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))
    cosine, conflict = agreement.summary()
    assert cosine["a vs b"] == pytest.approx(1.0)  # measured once, on the second step
    assert conflict == {"a vs b": 0.0, "a vs c": 0.5, "b vs c": 0.0}
    agreement.reset()
    assert agreement.summary() == ({}, {})


def _problem(rows: int = 64) -> tuple[dict, TensorSplit]:
    """Task ``same`` copies ``y``'s label; ``noise`` is a label drawn at random."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, 6, generator=generator)
    label = (inputs[:, 0] > 0).long()
    targets = {"y": label, "same": label.clone(), "noise": torch.randint(0, 2, (rows,), generator=generator)}
    tasks = build_tasks({n: TaskConfig(type="classification", label=n, num_classes=2) for n in targets})
    return tasks, TensorSplit(inputs, targets)


def _model(tasks: dict) -> HardSharingModel:
    torch.manual_seed(0)
    heads: dict[str, torch.nn.Module] = {n: torch.nn.Linear(16, 2) for n in tasks}
    if "same" in heads:  # the same head on the same label: the same gradient on the backbone
        heads["same"].load_state_dict(heads["y"].state_dict())
    return HardSharingModel(MLPBackbone(MLPConfig(hidden=[16]), in_features=6), heads)


def _first_epoch(tasks: dict, split: TensorSplit, scratch: Path, **config: object) -> EpochRecord:
    settings = TrainingConfig.model_validate({"max_epochs": 1, "batch_size": 64, **config})
    return train(_model(tasks), tasks, split, split, settings, 0, scratch, log=lambda line: None)[0]


def test_sum_sampled_and_a_gradient_method_measure_the_same_first_step(tmp_path):
    tasks, split = _problem()  # one batch per epoch: both measure the same model on the same rows
    summed = _first_epoch(tasks, split, tmp_path / "sum", gradient="sum", gradient_stats_every=1)
    pcgrad = _first_epoch(tasks, split, tmp_path / "pcgrad", gradient="pcgrad", gradient_stats_every=1)
    assert set(summed.gradient_cosine) == {"y vs same", "y vs noise", "same vs noise"}
    for pair, value in summed.gradient_cosine.items():
        assert value == pytest.approx(pcgrad.gradient_cosine[pair], abs=1e-5)
    assert summed.gradient_cosine["y vs same"] == pytest.approx(1.0, abs=1e-5)  # one label, one gradient
    assert summed.gradient_conflict["y vs same"] == 0.0
    assert summed.gradient_cosine["y vs noise"] < 0.9
    assert summed.as_metrics()["grad_cosine/y vs same"] == summed.gradient_cosine["y vs same"]
    assert "grad_conflict/y vs noise" in summed.as_metrics()


def test_switched_off_or_one_task_measures_nothing(tmp_path):
    tasks, split = _problem()
    assert _first_epoch(tasks, split, tmp_path / "off", gradient_stats_every=0).gradient_cosine == {}
    single = {"y": tasks["y"]}
    record = _first_epoch(single, TensorSplit(split.inputs, {"y": split.targets["y"]}), tmp_path / "one")
    assert record.gradient_cosine == {} and record.gradient_conflict == {}

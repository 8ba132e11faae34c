"""Resume: a training stopped after an epoch continues from its resume state and ends with
the same weights, bit for bit, as one that ran through (same machine, same process here;
tests/jobs/test_resume_after_sigkill.py kills a real process)."""

import pytest
import torch

from components.config import TrainingConfig
from components.errors import Terminated
from components.training.previous import PREVIOUS
from components.training.resume import Resume, find_state, state_path, training_key
from tests.helpers.stages import train_tiny


class Killed(Terminated):
    """Stands for the process stopped right after an epoch's resume state was written: what
    SIGTERM raises keeps that state, as a SIGKILL leaves it (any other error is a failure,
    whose state goes)."""


def _stop_after(epoch: int):
    def on_epoch(record):
        if record.epoch == epoch:
            raise Killed

    return on_epoch


@pytest.mark.parametrize(
    ("weighting", "gradient"),
    [("equal", "sum"), ("dwa", "pcgrad"), ("famo", "graddrop"), ("gradnorm", "nash_mtl"), ("uncertainty", "upgrad")],
)
def test_a_resumed_training_ends_bit_identical(tiny_params, tiny_frames, tmp_path, weighting, gradient):
    params = tiny_params.model_copy(
        update={
            "training": TrainingConfig.model_validate(
                tiny_params.training.model_dump() | {"max_epochs": 4, "loss_weighting": weighting, "gradient": gradient}
            )
        }
    )
    key = training_key(params.fingerprint(), "mtl")
    straight, straight_history = train_tiny(params, tiny_frames, tmp_path / "straight", resume=Resume(key))
    with pytest.raises(Killed):
        train_tiny(params, tiny_frames, tmp_path / "killed", resume=Resume(key, "run-1"), on_epoch=_stop_after(2))
    state = find_state(tmp_path / "killed", key)
    assert state is not None and state["epoch"] == 2 and state["run_id"] == "run-1"
    resumed, resumed_history = train_tiny(params, tiny_frames, tmp_path / "killed", resume=Resume(key, "run-2", state))

    assert [r.epoch for r in resumed_history] == [1, 2, 3, 4]
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert [r.val_metrics for r in resumed_history] == [r.val_metrics for r in straight_history]
    assert [r.sha256 for r in resumed_history] == [r.sha256 for r in straight_history]
    assert not state_path(tmp_path / "killed").exists()  # a finished training leaves no resume state


def test_a_state_from_other_parameters_is_not_resumed(tiny_params, tiny_frames, tmp_path):
    with pytest.raises(Killed):
        train_tiny(tiny_params, tiny_frames, tmp_path, resume=Resume("old key"), on_epoch=_stop_after(1))
    assert find_state(tmp_path, "old key") is not None
    assert find_state(tmp_path, "new key") is None


def test_a_fresh_start_removes_another_trainings_checkpoints(tiny_params, tiny_frames, tmp_path):
    (tmp_path / "epoch_009.pt").write_bytes(b"from a run with more epochs")
    (tmp_path / "epoch_009.safetensors").write_bytes(b"")
    train_tiny(tiny_params, tiny_frames, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == [
        "epoch_001.pt",
        "epoch_001.safetensors",
        "epoch_002.pt",
        "epoch_002.safetensors",
    ]


def test_a_crafted_resume_state_is_refused(tiny_params, tmp_path):
    import pickle

    from components.training.checkpoints import CheckpointError

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    state_path(tmp_path).write_bytes(pickle.dumps({"key": "k", "x": Payload()}))
    with pytest.raises(CheckpointError, match="refused"):
        find_state(tmp_path, "k")


def test_a_failed_training_puts_the_last_good_one_back(tiny_params, tiny_frames, tmp_path):
    """A training that fails mid-run (here after its first epoch) deleted the checkpoints of
    the last good one before it started (issue 25, case 8): they come back as they were."""
    train_tiny(tiny_params, tiny_frames, tmp_path)
    good = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def fail(record):
        raise RuntimeError("a failure after an epoch")

    with pytest.raises(RuntimeError):
        train_tiny(tiny_params, tiny_frames, tmp_path, resume=Resume("another key"), on_epoch=fail)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == good
    assert not state_path(tmp_path).exists() and not (tmp_path / PREVIOUS).exists()

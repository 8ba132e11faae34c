"""Convergence on real tiny trainings: early stopping ends a training that stopped improving,
the learning-rate schedules move the rate as configured, gradient clipping bounds a step,
and a killed training with all of it resumes to the same end, bit for bit."""

import pytest
import torch

from components.config import EarlyStoppingConfig, LRScheduleConfig
from components.training.loop import training_ending
from components.training.resume import Resume, find_state, training_key
from components.training.stopping import EarlyStopping, ending, metric_gain
from tests.helpers.stages import tensor_split, train_tiny


def _with(params, **training):
    return params.model_copy(update={"training": params.training.model_copy(update=training)})


#: no epoch can beat the first by a 1000 % relative change: the training plateaus at once
FLAT = EarlyStoppingConfig(patience=2, min_delta=10.0)


def test_early_stopping_ends_a_training_patience_epochs_after_its_best(tiny_params, tiny_frames, tmp_path):
    params = _with(tiny_params, max_epochs=10, early_stopping=FLAT)
    _, history = train_tiny(params, tiny_frames, tmp_path)
    assert [(r.epoch, r.improved) for r in history] == [(1, True), (2, False), (3, False)]
    assert training_ending(history, params.training).describe() == "converged at epoch 3 (best 1)"


def test_without_early_stopping_the_budget_runs_out_and_convergence_is_still_judged(tiny_params, tiny_frames, tmp_path):
    params = _with(tiny_params, max_epochs=4, early_stopping=FLAT.model_copy(update={"enabled": False}))
    _, history = train_tiny(params, tiny_frames, tmp_path)
    assert len(history) == 4 and training_ending(history, params.training).converged


def test_an_improving_training_that_runs_out_of_budget_is_not_converged():
    gain = metric_gain({"mae": False})
    stopping = EarlyStopping(gain, EarlyStoppingConfig(patience=2, min_delta=0.01))
    improved = [(epoch, stopping.observe({"mae": mae})) for epoch, mae in enumerate([2.0, 1.5, 1.49, 1.2], start=1)]
    assert improved == [(1, True), (2, True), (3, False), (4, True)]  # 1.49 is within 1 % of 1.5
    assert not stopping.should_stop
    last = ending(improved, max_epochs=4, patience=2)
    assert not last.converged and last.best_epoch == 4
    assert last.describe() == "budget exhausted while improving (best = last epoch, 4 of training.max_epochs 4)"
    waited = ending([(1, True), (2, False)], max_epochs=2, patience=2)
    assert not waited.converged and "1 of early_stopping.patience 2" in waited.describe()
    # a NaN metric never counts as an improvement
    assert not stopping.observe({"mae": float("nan")})


def test_plateau_halves_the_rate_after_each_flat_epoch(tiny_params, tiny_frames, tmp_path):
    params = _with(
        tiny_params,
        max_epochs=3,
        early_stopping=FLAT.model_copy(update={"enabled": False}),
        schedule=LRScheduleConfig(name="plateau", plateau_factor=0.5, plateau_patience=0),
    )
    _, history = train_tiny(params, tiny_frames, tmp_path)
    lr = params.training.lr
    assert [r.learning_rate for r in history] == pytest.approx([lr, lr, lr / 2])


def test_warmup_cosine_reaches_the_rate_after_warm_up_and_zero_at_the_budget(tiny_params, tiny_frames, tmp_path):
    schedule = LRScheduleConfig(name="warmup_cosine", warmup_epochs=1.0)
    params = _with(tiny_params, max_epochs=3, schedule=schedule, early_stopping=FLAT.model_copy(update={"patience": 9}))
    _, history = train_tiny(params, tiny_frames, tmp_path)
    lr = params.training.lr
    first, middle, last = (r.learning_rate for r in history)
    assert first == pytest.approx(lr)  # the ramp's end: cosine decay begins here
    assert middle == pytest.approx(lr / 2, rel=1e-3)  # half-way through the cosine: cos(π/2)
    assert last == pytest.approx(0.0, abs=1e-9)


def test_clipping_bounds_the_step_of_plain_sgd(tiny_params, tiny_frames):
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.loop import make_trainer, train_step

    def step_norm(clip):
        torch.manual_seed(0)
        config = tiny_params.training.model_copy(
            update={"optimizer": "sgd", "sgd_momentum": 0.0, "weight_decay": 0.0, "lr": 1.0, "clip_grad_norm": clip}
        )
        tasks = build_tasks(tiny_params.tasks)
        split = tensor_split(tiny_params, tiny_frames["train"])
        trainer = make_trainer(build_model(tiny_params, tasks), tasks, split, config)
        before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
        train_step(trainer, split.inputs[:32], [t[:32] for t in split.targets.values()], 1, 1)
        after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        return float((after - before).norm())

    assert step_norm(1e-3) == pytest.approx(1e-3, rel=1e-3)  # lr 1 x a gradient clipped to norm 1e-3
    assert step_norm(None) > 1e-2


def test_a_killed_training_with_a_schedule_resumes_to_the_same_end(tiny_params, tiny_frames, tmp_path):
    params = _with(
        tiny_params,
        max_epochs=6,
        early_stopping=EarlyStoppingConfig(patience=2, min_delta=10.0),
        schedule=LRScheduleConfig(name="warmup_cosine", warmup_epochs=0.5),
        clip_grad_norm=1.0,
    )
    key = training_key(params.fingerprint(), "mtl")
    straight, straight_history = train_tiny(params, tiny_frames, tmp_path / "straight", resume=Resume(key))

    def killed(record):
        if record.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tiny(params, tiny_frames, tmp_path / "killed", resume=Resume(key, "run-1"), on_epoch=killed)
    state = find_state(tmp_path / "killed", key)
    resumed, resumed_history = train_tiny(params, tiny_frames, tmp_path / "killed", resume=Resume(key, "run-2", state))
    assert [r.epoch for r in resumed_history] == [1, 2, 3]  # stopped early at the same epoch
    assert [r.learning_rate for r in resumed_history] == [r.learning_rate for r in straight_history]
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name

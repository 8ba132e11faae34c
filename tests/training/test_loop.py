"""Real torch training on tiny real data: checkpoints, their hashes, and the task heads."""

import json
import math
from pathlib import Path

import pytest
import torch

from components.config import TrainingConfig
from components.models import build_model
from components.tasks import build_tasks
from components.training.backward import FeatureBackward, JacobianBackward
from components.training.checkpoints import MANIFEST, CheckpointError, checkpoint_digest, load_checkpoint
from tests.helpers.stages import train_tiny


def test_every_epoch_checkpoint_holds_full_state_and_its_hash(tiny_params, tiny_frames, tmp_path):
    _, history = train_tiny(tiny_params, tiny_frames, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert [e["checkpoint"] for e in manifest] == ["epoch_001.pt", "epoch_002.pt"]
    for entry in manifest:
        assert checkpoint_digest(tmp_path / entry["checkpoint"]) == entry["sha256"]
        checkpoint = load_checkpoint(tmp_path / entry["checkpoint"], entry["sha256"])
        assert checkpoint["epoch"] == entry["epoch"]
        assert {"model", "optimizer", "rng", "val_metrics"} <= set(checkpoint)
        assert {"python", "numpy", "torch"} <= set(checkpoint["rng"])
        assert set(checkpoint["val_metrics"]) == {"left", "right", "sum"}
    assert history[-1].train_loss["left"] < history[0].train_loss["left"]
    assert 0 <= history[-1].val_scores["left"]["macro_f1"] <= 1  # secondary metrics ride along


def test_modified_checkpoint_is_refused(tiny_params, tiny_frames, tmp_path):
    train_tiny(tiny_params, tiny_frames, tmp_path)
    entry = json.loads((tmp_path / MANIFEST).read_text())[0]
    with open(tmp_path / entry["checkpoint"], "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_checkpoint(tmp_path / entry["checkpoint"], entry["sha256"])
    (tmp_path / "epoch_002.safetensors").write_bytes(b"not weights")  # a whole-file swap is caught too
    entry = json.loads((tmp_path / MANIFEST).read_text())[1]
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_checkpoint(tmp_path / entry["checkpoint"], entry["sha256"])


class Payload:
    """What a crafted checkpoint holds: unpickling it runs a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_is_refused_without_running_its_payload(tiny_params, tiny_frames, tmp_path):
    import pickle

    train_tiny(tiny_params, tiny_frames, tmp_path)
    marker = tmp_path / "payload-ran"
    torch.save({"epoch": 1, "val_metrics": {}, "optimizer": Payload(marker)}, tmp_path / "epoch_001.pt")
    with open(tmp_path / "epoch_001.pt", "rb") as handle:
        assert b"payload-ran" in handle.read()  # the payload is there, as a pickle would run it
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest[0]["sha256"] = checkpoint_digest(tmp_path / "epoch_001.pt")  # the attacker updates the manifest too
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"epoch_001.pt: refused, not a checkpoint of plain tensors"):
        load_checkpoint(tmp_path / "epoch_001.pt", manifest[0]["sha256"])
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # what the refusal stands on
        torch.load(tmp_path / "epoch_001.pt", weights_only=True)


def test_baseline_keeps_only_its_best_epoch(tiny_params, tiny_frames, tmp_path):
    params = tiny_params.model_copy(update={"tasks": {"sum": tiny_params.tasks["sum"]}})
    _, history = train_tiny(params, tiny_frames, tmp_path, keep_best_for="sum")
    assert sorted(p.name for p in tmp_path.glob("best*")) == ["best.pt", "best.safetensors"]
    assert not list(tmp_path.glob("epoch_*"))
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["val_metrics"]["sum"] == min(r.val_metrics["sum"] for r in history)


def test_same_seed_same_weights(tiny_params, tiny_frames, tmp_path):
    first, _ = train_tiny(tiny_params, tiny_frames, tmp_path / "a")
    second, _ = train_tiny(tiny_params, tiny_frames, tmp_path / "b")
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_regression_head_predicts_in_target_units(tiny_params, tiny_frames, tmp_path):
    model, _ = train_tiny(tiny_params, tiny_frames, tmp_path)
    head = model.heads["sum"]
    assert head.target_mean.item() == pytest.approx(tiny_frames["train"]["sum"].mean(), rel=1e-5)
    task = build_tasks(tiny_params.tasks)["sum"]
    assert task.predict(head, torch.zeros(1)).item() == pytest.approx(head.target_mean.item())


def test_initial_weights_depend_only_on_the_seed(tiny_params):
    from components.jobs.trainings import seeded_model

    tasks = build_tasks(tiny_params.tasks)
    first = seeded_model(tiny_params, tasks, Path("."))  # pixels: nothing fitted is read
    torch.rand(1000)  # anything earlier in the process that draws from the global RNG
    second = seeded_model(tiny_params, tasks, Path("."))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("weighting", "gradient"),
    [
        ("uncertainty", "pcgrad"),
        ("gradnorm", "sum"),
        ("famo", "upgrad"),
        ("dwa", "normalize"),
        ("schedule", "mgda"),
        ("fixed", "cagrad"),
        ("equal", "nash_mtl"),
        ("equal", "graddrop"),
    ],
)
def test_weighting_and_gradient_methods_train(tiny_params, tiny_frames, tmp_path, weighting, gradient):
    knobs = {"schedule": {"schedule": {"sum": [(1, 0.0), (2, 1.0)]}}, "fixed": {"weights": {"sum": 0.5}}}
    training = TrainingConfig.model_validate(
        tiny_params.training.model_dump()
        | {"loss_weighting": {"name": weighting, **knobs.get(weighting, {})}, "gradient": gradient}
    )
    params = tiny_params.model_copy(update={"training": training})
    _, history = train_tiny(params, tiny_frames, tmp_path)
    last = history[-1]
    assert all(math.isfinite(v) for v in last.train_loss.values())
    assert last.step_seconds > 0 and last.peak_memory_mb > 0
    weights = [last.weights[t] for t in ("left", "right", "sum")]
    if weighting == "uncertainty":  # log-variances learned away from 0 (weight ½)
        assert all(w != pytest.approx(0.5, abs=1e-4) for w in weights)
    if weighting == "fixed":
        assert weights == pytest.approx([1.0, 1.0, 0.5])
    if weighting == "schedule":  # epoch 2 of a 0 -> 1 ramp
        assert weights[2] == pytest.approx(1.0)


def test_per_task_and_shared_learning_rates(tiny_params):
    from components.training.loop import make_optimizer
    from components.weighting import build_weighting

    tasks_config = dict(tiny_params.tasks)
    tasks_config["sum"] = tasks_config["sum"].model_copy(update={"lr_scale": 0.1})
    tasks = build_tasks(tasks_config)
    model = build_model(tiny_params, tasks)
    config = TrainingConfig.model_validate(
        tiny_params.training.model_dump() | {"shared_lr": 0.01, "loss_weighting": "uncertainty"}
    )
    weighting = build_weighting(config, list(tasks), model.gradnorm_parameters())
    groups = make_optimizer(model, tasks, weighting, config).param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.01, config.lr, config.lr, config.lr * 0.1, config.lr])
    assert groups[0]["params"] == model.shared_parameters()
    assert groups[-1]["params"] == weighting.trainable()


def test_sgd_takes_its_momentum_from_the_config(tiny_params):
    from components.training.loop import make_optimizer
    from components.weighting import build_weighting

    tasks = build_tasks(tiny_params.tasks)
    model = build_model(tiny_params, tasks)
    config = tiny_params.training.model_copy(update={"optimizer": "sgd", "sgd_momentum": 0.5})
    optimizer = make_optimizer(model, tasks, build_weighting(config, list(tasks), model.gradnorm_parameters()), config)
    assert isinstance(optimizer, torch.optim.SGD)
    assert {group["momentum"] for group in optimizer.param_groups} == {0.5}


@pytest.mark.parametrize(
    ("sharing", "weighting", "gradient"), [("cross_stitch", "gradnorm", "pcgrad"), ("mmoe", "uncertainty", "mgda")]
)
def test_soft_sharing_trains_with_weighting_and_gradient_methods(
    tiny_params, tiny_frames, tmp_path, sharing, weighting, gradient
):
    params = tiny_params.model_copy(
        update={
            "model": tiny_params.model.model_copy(update={"sharing": sharing}),
            "training": TrainingConfig.model_validate(
                tiny_params.training.model_dump() | {"loss_weighting": weighting, "gradient": gradient}
            ),
        }
    )
    model, history = train_tiny(params, tiny_frames, tmp_path)
    assert all(math.isfinite(v) for v in history[-1].train_loss.values())
    assert history[-1].train_loss["left"] < history[0].train_loss["left"]
    if sharing == "cross_stitch":  # the mixing weights were learned
        assert not torch.allclose(
            model.units[0].alpha, torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
        )


def test_training_with_missing_labels(tiny_params, tiny_frames, tmp_path):
    frames = {split: frame.copy() for split, frame in tiny_frames.items()}
    train_frame = frames["train"]
    train_frame["left"] = train_frame["left"].astype("float64").mask(train_frame.index % 3 == 0)
    train_frame["sum"] = train_frame["sum"].mask(train_frame.index % 4 == 1)
    _, history = train_tiny(tiny_params, frames, tmp_path)
    assert all(math.isfinite(v) for v in history[-1].train_loss.values())
    assert history[-1].train_loss["left"] < history[0].train_loss["left"]


def test_multilabel_and_l1_tasks_train(tiny_params, tiny_frames, tmp_path):
    from components.config import TaskConfig

    frames = {}
    for split, frame in tiny_frames.items():
        frames[split] = frame.assign(
            left_even=(frame["left"] % 2 == 0).astype(int),
            right_even=(frame["right"] % 2 == 0).astype(int),
            left_bigger=(frame["left"] > frame["right"]).astype(int),
        )
    tasks = {
        "parity": TaskConfig(type="multilabel", label=["left_even", "right_even", "left_bigger"]),
        "sum": TaskConfig(type="regression", label="sum", loss="l1"),
    }
    params = tiny_params.model_copy(update={"tasks": tasks})
    _, history = train_tiny(params, frames, tmp_path)
    assert history[-1].train_loss["parity"] < history[0].train_loss["parity"]
    assert 0 <= history[-1].val_metrics["parity"] <= 1 and "macro_f1" in history[-1].val_scores["parity"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bf16", [True, False])
@pytest.mark.parametrize("on", ["parameters", "features"])
def test_cuda_training_with_and_without_bf16_autocast(tiny_params, tiny_frames, tmp_path, bf16, on):
    update = {"device": "cuda", "bf16": bf16, "gradient": {"name": "pcgrad", "compare_on": on}}
    params = tiny_params.model_copy(
        update={"training": TrainingConfig.model_validate(tiny_params.training.model_dump() | update)}
    )
    model, history = train_tiny(params, tiny_frames, tmp_path)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 master weights
    assert history[-1].train_loss["left"] < history[0].train_loss["left"]
    assert all(math.isfinite(v) for v in history[-1].val_metrics.values())
    assert history[-1].step_seconds > 0 and history[-1].peak_memory_mb > 0


def test_compiled_training_steps_match_eager_ones_for_sum_and_a_gradient_method(tiny_params, tiny_frames):
    """training.compile: the same updates as eager execution, for sum and for PCGrad, which
    backpropagates through the compiled forward once per task (one compilation serves both:
    the forward is the same)."""
    from torch._dynamo.utils import counters

    from components.data.encoders import PixelEncoder
    from components.training.loader import TensorSplit
    from components.training.loop import make_trainer, train_step
    from components.training.seeding import seed_everything
    from tests.helpers.stages import targets

    frame = tiny_frames["train"].head(64)
    split = TensorSplit(PixelEncoder(36).encode(frame), {n: targets(frame, t) for n, t in tiny_params.tasks.items()})
    labels = [split.targets[name] for name in tiny_params.tasks]

    def trained(gradient: str, compiled: bool) -> torch.nn.Module:
        config = TrainingConfig.model_validate(
            tiny_params.training.model_dump() | {"gradient": gradient, "compile": compiled}
        )
        tasks = build_tasks(tiny_params.tasks)
        seed_everything(0)
        trainer = make_trainer(build_model(tiny_params, tasks), tasks, split, config)
        assert (trainer.compiled is not None) == compiled
        trainer.weighting.start_epoch(1)
        for step in range(1, 4):
            seed_everything(step)  # the same dropout masks in both
            train_step(trainer, split.inputs, labels, epoch=1, step=step)
        return trainer.model

    torch._dynamo.reset()  # no compiled code cached by an earlier test: this one must compile
    graphs_before = counters["stats"]["unique_graphs"]
    for gradient in ("sum", "pcgrad"):
        eager, compiled = trained(gradient, False), trained(gradient, True)
        # compared through the outputs: a conv bias just before a normalisation has a zero
        # gradient up to rounding, which Adam turns into steps of either sign
        eager.eval(), compiled.eval()
        with torch.no_grad():
            expected, found = eager(split.inputs), compiled(split.inputs)
        for task in expected:
            assert torch.allclose(expected[task], found[task], atol=1e-3), (gradient, task)
    assert counters["stats"]["unique_graphs"] > graphs_before  # dynamo did compile the forward


def test_the_gradient_methods_settings_reach_the_trainer(tiny_params, tiny_frames):
    from components.data.encoders import PixelEncoder
    from components.training.loader import TensorSplit
    from components.training.loop import make_trainer
    from tests.helpers.stages import targets

    frame = tiny_frames["train"].head(16)
    split = TensorSplit(PixelEncoder(36).encode(frame), {n: targets(frame, t) for n, t in tiny_params.tasks.items()})

    def trainer(**gradient):
        config = TrainingConfig.model_validate(tiny_params.training.model_dump() | {"gradient": gradient})
        tasks = build_tasks(tiny_params.tasks)
        return make_trainer(build_model(tiny_params, tasks), tasks, split, config)

    exact = trainer(name="cagrad", c=0.2).backward
    assert isinstance(exact, JacobianBackward) and exact.method._combine.c == 0.2
    on_features = trainer(name="cagrad", c=0.2, compare_on="features").backward
    assert isinstance(on_features, FeatureBackward) and on_features.method._weigh.c == 0.2
    assert trainer(name="nash_mtl", update_every=4).backward.method.aggregator.update_weights_every == 4


def test_a_batch_larger_than_the_training_rows_is_refused(tmp_path):
    """``batch_size: 100000`` against 1,500 rows trained one step an epoch, with no word
    (issue 25, case 11)."""
    from components.config import MLPConfig, TaskConfig
    from components.models.backbones import MLPBackbone
    from components.models.sharing import HardSharingModel
    from components.training.loader import TensorSplit
    from components.training.loop import BatchLargerThanSplit, train

    tasks = build_tasks({"y": TaskConfig(type="classification", label="y", num_classes=2)})
    model = HardSharingModel(MLPBackbone(MLPConfig(hidden=[4]), in_features=3), {"y": torch.nn.Linear(4, 2)})
    split = TensorSplit(torch.randn(30, 3), {"y": torch.arange(30) % 2})
    config = TrainingConfig(max_epochs=1, batch_size=64)
    with pytest.raises(
        BatchLargerThanSplit, match=r"\[mtl\] training.batch_size 64 is larger than the 30 training rows"
    ):
        train(model, tasks, split, split, config, 0, tmp_path, log=lambda line: None)
    assert not list(tmp_path.iterdir())  # refused before anything was written
    history = train(
        model, tasks, split, split, config.model_copy(update={"batch_size": 30}), 0, tmp_path, log=lambda line: None
    )
    assert len(history) == 1

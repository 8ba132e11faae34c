"""Data-parallel training: two gloo processes on CPU train the same model as one process."""

from __future__ import annotations

import pytest
import torch

from components.config import Params
from components.io import tracking
from components.jobs import inputs, layout, prepare, train_mtl, trainings, validate
from components.tasks import build_tasks
from components.training import distributed
from components.training.checkpoints import load_checkpoint
from tests.helpers.projects import tiny_params_dict
from tests.helpers.stages import write_baselines_report

pytestmark = pytest.mark.slow  # end to end: real processes, servers or whole pipelines


def test_rank_slices_partition_the_single_process_batches():
    def batches(context):
        generator = torch.Generator().manual_seed(3)
        return list(distributed.RankSlicedBatchSampler(10, 4, True, generator, context))

    single = batches(distributed.Context())
    rank0 = batches(distributed.Context(rank=0, world_size=2))
    rank1 = batches(distributed.Context(rank=1, world_size=2))
    assert sorted(sum(single, [])) == list(range(10))
    assert [sorted(a + b) for a, b in zip(rank0, rank1)] == [sorted(batch) for batch in single]


def test_outside_torchrun_the_context_is_one_process():
    context = distributed.current()
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert torch.equal(context.mean(torch.tensor([1.0, 3.0])), torch.tensor([1.0, 3.0]))


def _train(tmp_path, name: str, devices: int, gradient: str, on: str, sharing: str) -> dict:
    raw = tiny_params_dict()
    raw["model"]["cnn"]["norm"] = "group"  # per-sample statistics: slicing a batch changes nothing
    raw["model"]["sharing"] = sharing
    raw["training"].update(
        devices=devices,
        gradient={"name": gradient} | ({"compare_on": on} if gradient != "sum" else {}),
        loss_weighting="uncertainty",
        num_threads=1,
    )
    params = Params.model_validate(raw)
    root = tmp_path / name
    prepare.run(params, root)
    validate.run(params, root)
    write_baselines_report(root, params)
    parent = tracking.start_pipeline_run(params.registry.experiment)
    summary = train_mtl.run(params, root, parent)
    checkpoint = load_checkpoint(root / layout.MTL_DIR / "epoch_002.pt")
    model = trainings.seeded_model(params, build_tasks(params.tasks), root)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    with torch.no_grad():
        outputs = model(inputs.load_tensor_splits(params, root, ("val",))["val"].inputs)
    return {"summary": summary, "outputs": outputs}


@pytest.mark.parametrize(
    ("gradient", "on", "sharing", "reduction"),
    [
        ("pcgrad", "parameters", "hard", "each task's gradients all-reduced before they are combined"),
        ("mgda", "features", "hard", "each task's gradients all-reduced before they are combined"),
        # soft sharing's penalty joins the one backward pass DDP reduces
        (
            "sum",
            "parameters",
            "soft_penalty",
            "DistributedDataParallel, gradients all-reduced in buckets during backward",
        ),
    ],
)
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(
    tmp_path, monkeypatch, mlflow_db, capfd, gradient, on, sharing, reduction
):
    monkeypatch.chdir(tmp_path)
    one = _train(tmp_path, "one", devices=1, gradient=gradient, on=on, sharing=sharing)
    capfd.readouterr()
    two = _train(tmp_path, "two", devices=2, gradient=gradient, on=on, sharing=sharing)
    assert f"data-parallel over 2 processes: {reduction}" in capfd.readouterr().out

    # PCGrad saw each task's gradient averaged over both processes, as one process computes
    # it; MGDA on features, the Gramian of the whole batch, summed from both processes; sum,
    # DDP's average of the summed gradient (and the uncertainty weights' own average)
    # (compared through the outputs: a conv bias just before a normalisation has a zero
    # gradient up to rounding, which Adam turns into steps of either sign)
    for task, output in one["outputs"].items():
        assert torch.allclose(output, two["outputs"][task], atol=1e-3), task
    for task, value in one["summary"]["final_val"].items():
        assert abs(value - two["summary"]["final_val"][task]) < 0.01
    # rank 0 logged one MLflow run for the two processes
    runs = tracking.client().search_runs([tracking.experiment_id("tiny-mtl")], "tags.`mtl.role` = 'training'")
    assert len(runs) == 2


def test_one_process_draws_the_batches_a_shuffling_dataloader_draws():
    """Slicing batches by rank must not change single-process training: same order, same RNG use."""
    from torch.utils.data import DataLoader, TensorDataset

    from components.training.loader import TensorSplit, make_loader

    def epochs(loader):
        return [[batch[0].tolist() for batch in loader] for _ in range(2)], torch.rand(1).item()

    torch.manual_seed(1)
    plain = epochs(
        DataLoader(
            TensorDataset(torch.arange(300)), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(5)
        )
    )
    torch.manual_seed(1)
    split = TensorSplit(torch.arange(300), {})
    ours = epochs(make_loader(split, [], batch_size=64, shuffle=True, seed=5))
    assert ours == plain


def test_torchrun_output_streams_to_the_console_and_a_failure_keeps_its_last_lines(capfd):
    from components.training.distributed import DistributedLaunchError, launch

    launch(["--help"], 1)
    assert "Multi-task learning pipeline stages." in capfd.readouterr().out  # written as it came
    with pytest.raises(DistributedLaunchError, match="exited with 1") as failure:
        launch(["status", "--params", "no-such-params.yaml"], 1)
    assert "no-such-params.yaml" in str(failure.value)
    assert "no-such-params.yaml" in capfd.readouterr().out

"""Tagging, span and segmentation tasks, their loaders, and tasks from separate datasets:
metrics against hand-computed cases, alignment of labels with tokens, and tiny pipelines
end to end (prepare → validate → baselines → MTL → select → register → serve)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException
from torch.nn import functional as F

from components.config import Params, ParamsError, TaskConfig
from components.data.encoders import IGNORE, fit_encoder, load_encoder
from components.data.readers import FileFormatError, read_split_file
from components.data.sources import build_splits
from components.data.splits import write_splits
from components.io import tracking
from components.jobs import prepare, validate, versions
from components.jobs.inputs import load_tensor_splits
from components.models import build_model
from components.tasks import build_task, build_tasks, check_tasks
from components.training.augmentation import JointAugmentation
from components.validation.report import DataValidationError
from tests.helpers.files import TAGS, shapes, write_png_split, write_squad
from tests.helpers.projects import images_dict, mtl, text_datasets_dict
from tests.helpers.serving import unlisted_imports
from tests.helpers.stages import run_stages, targets

TAGGING = TaskConfig(type="tagging", label="tags", tags=["O", "B-PER", "I-PER", "B-LOC", "B-ORG"])
SPAN = TaskConfig(type="span", label=["answer_start", "answer_text"])
SEGMENT = TaskConfig(type="segmentation", label="mask", num_classes=3)
DEPTH = TaskConfig(type="depth", label="depth")


def test_entity_f1_counts_whole_entities_at_word_positions_only():
    task = build_task("ner", TAGGING)
    O, BP, IP, BL, BO = range(5)  # noqa: N806, E741
    # gold: [B-PER I-PER] O [B-LOC]; predicted: [B-PER I-PER] O [B-ORG]; position 2 is a
    # second sub-word (IGNORE): its wrong prediction must not count
    target = torch.tensor([[BP, IP, IGNORE, O, BL, IGNORE]])
    prediction = torch.tensor([[BP, IP, BO, O, BO, BO]])
    scores = task.score(prediction, target)
    # one true positive (PER), one false positive (ORG), one false negative (LOC): P = R = F1 = 1/2
    assert scores["entity_f1"] == pytest.approx(0.5)
    assert scores["token_accuracy"] == pytest.approx(3 / 4)


def test_tagging_loss_is_cross_entropy_over_labeled_tokens_only():
    task = build_task("ner", TAGGING)
    logits = torch.randn(2, 4, 5)
    target = torch.tensor([[1, IGNORE, 0, IGNORE], [IGNORE] * 4])  # second row: no tags (another dataset)
    expected = F.cross_entropy(logits[0, [0, 2]], torch.tensor([1, 0]))
    assert torch.allclose(task.loss(None, logits, target), expected)


def test_squad_scores_of_token_spans_and_no_answer():
    task = build_task("qa", SPAN)
    prediction = torch.tensor([[3, 5], [0, 0], [2, 2]])
    target = torch.tensor([[4, 5], [0, 0], [0, 0]])
    scores = task.score(prediction, target)
    # row 1: tokens {3,4,5} vs {4,5}: P 2/3, R 1, F1 0.8, EM 0; row 2: both "no answer": 1, 1;
    # row 3: an answer where there is none: 0, 0
    assert scores["f1"] == pytest.approx((0.8 + 1 + 0) / 3)
    assert scores["exact_match"] == pytest.approx(1 / 3)


def test_span_prediction_is_the_best_span_that_ends_after_it_starts():
    task = build_task("qa", SPAN)
    start = torch.tensor([[0.0, 1.0, 5.0, 0.0]])
    end = torch.tensor([[0.0, 4.0, 0.0, 1.0]])  # the best end (1) lies before the best start (2)
    assert task.predict(None, torch.stack([start, end], dim=-1)).tolist() == [[2, 3]]


def test_miou_leaves_out_ignored_pixels_and_absent_classes():
    task = build_task("seg", SEGMENT)
    prediction = torch.tensor([[[0, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [255, 0]]])
    # pixel (1,0) is ignored; class 0: ∩ 1, ∪ 2; class 1: ∩ 1, ∪ 2; class 2 absent: mIoU 0.5
    scores = task.score(prediction, target)
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["pixel_accuracy"] == pytest.approx(2 / 3)


def test_segmentation_loss_skips_ignored_pixels():
    task = build_task("seg", SEGMENT)
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 2], [255, 1]]])
    labeled = logits.permute(0, 2, 3, 1).reshape(-1, 3)[[0, 1, 3]]
    assert torch.allclose(task.loss(None, logits, target), F.cross_entropy(labeled, torch.tensor([0, 2, 1])))


def test_depth_metrics_are_nyuv2s_over_valid_pixels_only():
    task = build_task("depth", DEPTH)
    nan = float("nan")
    prediction = torch.tensor([[[2.0, 1.0], [3.5, 7.0]], [[5.0, 5.0], [5.0, 4.5]]])
    target = torch.tensor([[[1.0, 1.0], [4.0, 0.0]], [[nan, nan], [nan, 4.0]]])
    # valid pixels: 1→2, 1→1, 4→3.5 (row 1; 0 is no reading), 4→4.5 (row 2; NaN is none)
    scores = task.score(prediction, target)
    assert scores["abs_rel"] == pytest.approx((1 + 0 + 0.125 + 0.125) / 4, rel=1e-5)
    assert scores["rmse"] == pytest.approx(((1 + 0 + 0.25 + 0.25) / 4) ** 0.5)
    assert scores["delta1"] == pytest.approx(3 / 4)  # 2/1 is out; 4/3.5 and 4.5/4 are in
    statistics = task.row_statistics(prediction, target)
    assert statistics is not None and statistics.tolist() == [[1.125, 3.0], [0.125, 1.0]]
    assert float(task.metric_from_statistics(statistics.sum(0))) == pytest.approx(scores["abs_rel"], rel=1e-5)
    assert task.labeled(torch.tensor([[[nan, 0.0]], [[nan, 2.0]]])).tolist() == [False, True]


def test_depth_loss_is_l1_on_the_standardised_valid_pixels_and_the_head_answers_in_metres():
    task = build_task("depth", DEPTH)
    head = task.head(4, image_size=2)
    target = torch.tensor([[[2.0, 0.0], [4.0, float("nan")]]])
    task.prepare_head(head, target)  # mean 3, std √2 of the valid pixels
    output = torch.tensor([[[0.0, 9.0], [1.0, 9.0]]])
    standard = (torch.tensor([2.0, 4.0]) - 3.0) / 2**0.5
    assert torch.allclose(task.loss(head, output, target), (torch.tensor([0.0, 1.0]) - standard).abs().mean())
    assert torch.allclose(task.predict(head, output)[0, 1], torch.tensor([3.0 + 2**0.5, 3.0 + 9.0 * 2**0.5]))
    assert tuple(head(torch.zeros(1, 4, 1, 1)).shape) == (1, 2, 2)


def test_png_directory_reads_depth_maps_in_millimetres_as_metres(tmp_path):
    from PIL import Image

    write_png_split(tmp_path / "train", rows=2, size=16, seed=0)
    (tmp_path / "train" / "depth").mkdir()
    for index, name in enumerate(sorted(p.name for p in (tmp_path / "train" / "images").iterdir())):
        millimetres = np.full((16, 16), 1500 + index, dtype=np.uint16)
        millimetres[0, 0] = 0  # no reading
        Image.fromarray(millimetres).save(tmp_path / "train" / "depth" / name)
    frame = read_split_file(tmp_path / "train", canvas_size=16)
    first = np.asarray(frame["depth"].iloc[0])
    assert len(first) == 256 and np.isnan(first[0]) and first[1] == pytest.approx(1.5)
    assert np.asarray(frame["depth"].iloc[1])[1] == pytest.approx(1.501)
    (tmp_path / "train" / "depth" / name).unlink()
    with pytest.raises(FileFormatError, match=f"no depth map in depth/ for {name}"):
        read_split_file(tmp_path / "train", canvas_size=16)


def test_conll_reader_splits_sentences_and_skips_docstart(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
    )
    frame = read_split_file(path)
    assert frame["tokens"].tolist() == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert frame["tags"].tolist() == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    path.write_text("EU\n")
    with pytest.raises(FileFormatError, match=r"a\.conll:1: a token line needs a word and a tag"):
        read_split_file(path)


def test_squad_reader_reads_v1_and_v2(tmp_path):
    write_squad(tmp_path / "q.json", rows=40, seed=0, unanswerable_share=0.3)
    frame = read_split_file(tmp_path / "q.json")
    answered = frame.dropna(subset=["answer_start"])
    assert len(frame) == 40 and 0 < len(answered) < 40
    assert all(
        c[s : s + len(t)] == t
        for c, s, t in zip(answered["context"], answered["answer_start"], answered["answer_text"])
    )
    assert (frame.loc[frame["answer_start"].isna(), "answer_text"] == "").all()
    v1 = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "Oslo is cold.",
                        "qas": [
                            {"id": "1", "question": "What is cold?", "answers": [{"text": "Oslo", "answer_start": 0}]}
                        ],
                    }
                ]
            }
        ]
    }
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    assert read_split_file(tmp_path / "v1.json").iloc[0][["answer_start", "answer_text"]].tolist() == [0, "Oslo"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(FileFormatError, match="not SQuAD JSON"):
        read_split_file(tmp_path / "bad.json")


def test_png_directory_and_npz_arrays_read_the_same(tmp_path):
    write_png_split(tmp_path / "png", rows=6, size=32, seed=0)
    images, masks = shapes(6, 32, seed=0)
    np.savez(tmp_path / "a.npz", images=images, masks=masks, shape=np.arange(6) % 2)
    from_png, from_npz = read_split_file(tmp_path / "png", 32), read_split_file(tmp_path / "a.npz", 32)
    assert from_png["shape"].tolist() == from_npz["shape"].tolist() == [0, 1, 0, 1, 0, 1]
    assert np.array_equal(from_png.filter(like="px_").to_numpy(), from_npz.filter(like="px_").to_numpy())
    assert np.array_equal(np.stack(from_png["mask"]), masks.reshape(6, -1))
    with pytest.raises(FileFormatError, match=r"images are 32x32; data.canvas_size is 36"):
        read_split_file(tmp_path / "a.npz", 36)
    (tmp_path / "png/masks/png-0003.png").unlink()
    with pytest.raises(FileFormatError, match="no mask in masks/ for png-0003.png"):
        read_split_file(tmp_path / "png", 32)


def test_word_tags_and_answers_align_with_tokens(tmp_path):
    params = Params.model_validate(text_datasets_dict(tmp_path))
    frames = build_splits(params, tmp_path)
    fit_encoder(params, frames["train"], tmp_path / "encoder")
    encoder = load_encoder(params, tmp_path / "encoder")
    frame = frames["train"]
    ids = encoder.encode(frame)
    tags = targets(frame, params.tasks["entities"], encoder)
    spans = targets(frame, params.tasks["answer"], encoder)
    ner = frame.index[frame["dataset"] == "ner"][0]
    words = frame.at[ner, "tokens"]
    first = encoder.encoders["ner"].first_subwords(frame.loc[[ner]])[0]
    assert [TAGS[i] for i in tags[ner, first].tolist()] == list(frame.at[ner, "tags"]) and len(first) == len(words)
    assert (tags[ner] != IGNORE).sum() == len(words)
    qa = frame[(frame["dataset"] == "qa") & frame["answer_start"].notna()].index[0]
    answer = encoder.encoders["qa"].answer_texts(frame.loc[[qa]], spans[[qa]])
    assert answer == [frame.at[qa, "answer_text"]]
    tweet = frame.index[frame["dataset"] == "tweets"][0]
    assert (tags[tweet] == IGNORE).all() and (spans[tweet] == IGNORE).all()  # other datasets' rows: no label
    assert ids.shape == (len(frame), params.model.text_transformer.max_length)


def validation_error(raw: dict, root) -> str:
    """The message with which validation refuses the data ``raw`` describes."""
    params = Params.model_validate(raw)
    prepare.run(params, root)
    with pytest.raises(DataValidationError) as failure:
        validate.run(params, root)
    return str(failure.value)


def test_tags_outside_the_declared_set_fail_validation_with_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = text_datasets_dict(tmp_path)
    raw["tasks"]["entities"]["tags"] = ["O", "B-PER", "I-PER"]  # B-LOC is missing
    message = validation_error(raw, tmp_path)
    assert "data/train.parquet: column 'tags' failed rule tags_in['B-PER', 'I-PER', 'O']" in message
    assert "id=ner-train-" in message and "B-LOC" in message


def test_a_missing_label_column_is_named_with_the_columns_present(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = text_datasets_dict(tmp_path)
    raw["tasks"]["entities"]["label"] = "ner_tags"
    message = validation_error(raw, tmp_path)
    assert "data/train.parquet: column 'ner_tags' failed rule column is missing" in message
    assert "columns present: id, dataset, text, sentiment" in message and "tags" in message


def test_an_answer_not_at_its_start_fails_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = text_datasets_dict(tmp_path)
    squad = json.loads((tmp_path / "raw/qa_train.json").read_text())
    answered = next(p["qas"][0] for p in squad["data"][0]["paragraphs"] if p["qas"][0]["answers"])
    answered["answers"][0]["answer_start"] += 3
    (tmp_path / "raw/qa_train.json").write_text(json.dumps(squad))
    message = validation_error(raw, tmp_path)
    assert (
        "column 'answer_start+answer_text+context' failed rule answer_text_at_answer_start(answer_text) (1 failing)"
        in message
    )
    assert f"id=qa-{answered['id']}" in message


@pytest.mark.slow
def test_an_unreadable_split_file_stops_prepare_with_file_and_reason(tmp_path):

    import yaml

    raw = text_datasets_dict(tmp_path)
    no_context = {"data": [{"paragraphs": [{"qas": [{"id": "1", "question": "Who?", "answers": []}]}]}]}
    (tmp_path / "raw/qa_val.json").write_text(json.dumps(no_context))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = mtl("prepare", tmp_path / "params.yaml", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "raw/qa_val.json: column '(file)' failed rule readable as its format" in result.stderr
    assert "not SQuAD JSON" in result.stderr and not (tmp_path / "data").exists()


def test_health_canary_takes_rows_of_every_dataset(tmp_path):
    from components.jobs.health import canary_frame

    raw = text_datasets_dict(tmp_path)
    raw["orchestration"] = {"health": {"canary_rows": 10}}
    params = Params.model_validate(raw)
    write_splits(build_splits(params, tmp_path), tmp_path / "data")
    assert canary_frame(params, tmp_path)["dataset"].value_counts().to_dict() == {"tweets": 10, "ner": 10, "qa": 10}


def test_task_types_need_their_input_and_list_valid_choices():
    base = {
        "data": {
            "source": "files",
            "files": {"train": "a", "val": "b", "test": "c"},
            "input": {"kind": "text", "columns": ["t"]},
        },
        "model": {"backbone": "text_transformer"},
    }
    with pytest.raises(ParamsError, match="tasks.ner: a tagging task reads tokens input, not text"):
        check_tasks(
            Params.model_validate(base | {"tasks": {"ner": {"type": "tagging", "label": "tags", "tags": ["O", "B-X"]}}})
        )
    with pytest.raises(ValueError, match="task 'x' names dataset 'news', but data.datasets is empty"):
        Params.model_validate(base | {"tasks": {"x": {"type": "regression", "label": "y", "dataset": "news"}}})
    with pytest.raises(ValueError, match="a span task takes two label columns"):
        build_task("qa", TaskConfig(type="span", label=["start", "text", "more"]))
    with pytest.raises(ValueError, match=r"not BIO: \['PER'\]"):
        build_task("ner", TaskConfig(type="tagging", label="tags", tags=["O", "PER"]))
    with pytest.raises(ValueError, match="ignore_index 1 is a class id"):
        build_task("seg", TaskConfig(type="segmentation", label="mask", num_classes=3, ignore_index=1))
    with pytest.raises(ParamsError, match="tasks.seg: segmentation needs a backbone with feature maps"):
        check_tasks(
            Params.model_validate(
                {
                    "data": {"source": "files", "files": {"train": "a", "val": "b", "test": "c"}},
                    "model": {"backbone": "mlp"},
                    "tasks": {"seg": {"type": "segmentation", "label": "mask", "num_classes": 2}},
                }
            )
        )


@pytest.mark.parametrize("sharing", ["hard", "cross_stitch", "mmoe", "sluice"])
def test_dense_and_pooled_tasks_share_one_forward_pass(tmp_path, sharing):
    raw = text_datasets_dict(tmp_path)
    raw["model"]["sharing"] = sharing
    params = Params.model_validate(raw)
    model = build_model(params, build_tasks(params.tasks))
    ids = torch.randint(1, 300, (4, 24))
    outputs = model(ids)
    assert (
        outputs["sentiment"].shape == (4, 3)
        and outputs["entities"].shape == (4, 24, 5)
        and outputs["answer"].shape == (4, 24, 2)
    )
    assert model(ids, ["entities"]).keys() == {"entities"}
    # GradNorm's layer is one every task's loss reaches
    loss = outputs["entities"].sum() + outputs["sentiment"].sum() + outputs["answer"].sum()
    (layer,) = model.gradnorm_parameters()[:1]
    assert torch.autograd.grad(outputs["entities"].sum(), layer, retain_graph=True)[0].abs().sum() > 0
    assert torch.autograd.grad(loss, layer)[0].abs().sum() > 0


@pytest.mark.slow
def test_text_tasks_from_three_datasets_train_serve_and_log_examples_per_task(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(text_datasets_dict(tmp_path))
    registration = run_stages(params, tmp_path)
    selection = json.loads((tmp_path / "reports/selection.json").read_text())
    assert {entry["metric"] for entry in selection["tasks"].values()} == {"accuracy", "entity_f1", "f1"}
    assert selection["tasks"]["entities"]["test"] > 0.5  # templated names and cities are learnable
    # temperature sampling (T=2) over 160 / 120 / 120 training rows, 400 draws per epoch
    manifest = json.loads((tmp_path / "models/mtl/checkpoints.json").read_text())
    seen = manifest[0]["examples"]
    counts = [seen["sentiment"], seen["entities"], seen["answer"]]
    assert sum(counts) == 400 and all(60 < c < 220 for c in counts)
    run = mlflow.get_run(registration.run_id)
    assert run.data.params["training.sampling"] == "temperature"
    logged = mlflow.search_runs(
        experiment_names=[params.registry.experiment],
        filter_string="metrics.`examples/entities` > 0",
        output_format="list",
    )
    assert logged and all(r.data.metrics["examples/entities"] > 0 for r in logged)

    model = mlflow.pyfunc.load_model(f"models:/{params.registry.model_name}/1")
    request = pd.DataFrame(
        {
            "dataset": ["tweets", "ner", "qa"],
            "text": ["what a ride", None, None],
            "tokens": [None, ["Mary", "lives", "in", "Rome", "."], None],
            "question": [None, None, "Where was Omar born?"],
            "context": [None, None, "Omar was born in Lima and works there."],
        }
    )
    predictions = model.predict(request)
    env = os.environ | {"MLFLOW_TRACKING_URI": mlflow_db, "MLFLOW_REGISTRY_URI": mlflow_db}
    labeled = pd.read_parquet(tmp_path / "data/test.parquet")
    uri = f"models:/{params.registry.model_name}/1"
    assert unlisted_imports(uri, request, labeled, env) == set()  # tokenizers, seqeval listed
    assert predictions.loc[0, "sentiment"] in {0, 1, 2}
    assert predictions.loc[1, "entities"] is not None and len(predictions.loc[1, "entities"]) == 5
    assert set(predictions.loc[1, "entities"]) <= set(TAGS)
    answer = predictions.loc[2, "answer"]
    assert answer == "" or answer in request.loc[2, "context"]
    # a task answers on its own dataset's rows only
    assert predictions["sentiment"].isna().tolist() == [False, True, True]
    assert predictions["entities"].isna().tolist() == [True, False, True]
    assert predictions["answer"].isna().tolist() == [True, True, False]


@pytest.mark.slow
def test_segmentation_and_depth_train_on_an_hf_backbone_from_image_files_with_joint_augmentation_and_serve(
    tmp_path, monkeypatch, mlflow_db
):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(images_dict(tmp_path))
    run_stages(params, tmp_path)
    # prepare decoded the 40x48 RGB files once, cropped to 32x32, into an array training maps
    train = load_tensor_splits(params, tmp_path, ("train",))["train"]
    assert train.inputs.dtype == torch.uint8 and tuple(train.inputs.shape) == (120, 3, 32, 32)
    mapped = (tmp_path / "data/train.images.npy").resolve()
    assert str(mapped) in Path("/proc/self/maps").read_text()  # read from the file's pages, not copied in
    # the training batches' masks moved with their images: the shape's pixels are the bright ones
    tasks = build_tasks(params.tasks)
    torch.manual_seed(0)
    images, (masks, depths, _) = JointAugmentation(train.augment, tasks)(
        train.inputs.float() / 255, [train.targets[name] for name in tasks]
    )
    labeled, shape = masks != 255, masks.clamp_max(2) > 0
    assert not torch.equal(masks, train.targets["mask"]) and labeled.float().mean() > 0.5
    assert ((images.amax(dim=1) > 130 / 255) == shape)[labeled].float().mean() > 0.95
    assert torch.equal(depths[labeled & shape], torch.ones(int((labeled & shape).sum())))
    selection = json.loads((tmp_path / "reports/selection.json").read_text())
    assert selection["tasks"]["mask"]["metric"] == "miou" and selection["tasks"]["mask"]["test"] > 0.5
    assert selection["tasks"]["depth"]["metric"] == "abs_rel" and selection["tasks"]["depth"]["test"] < 0.3
    model = mlflow.pyfunc.load_model(f"models:/{params.registry.model_name}/1")
    frame = pd.read_parquet(tmp_path / "data/test.parquet").head(3)
    predictions = model.predict(frame[["image"]])  # paths, relative to the project
    assert len(predictions.loc[0, "mask"]) == 32 * 32 and set(predictions.loc[0, "mask"]) <= {0, 1, 2}
    assert len(predictions.loc[0, "depth"]) == 32 * 32 and min(predictions.loc[0, "depth"]) > 0
    # the same files sent as base64 PNG get the same answers
    sent = pd.DataFrame({"image_base64": [base64.b64encode(Path(p).read_bytes()).decode() for p in frame["image"]]})
    pd.testing.assert_frame_equal(model.predict(sent), predictions)
    with pytest.raises(MlflowException, match="column image_base64: rows 1 are not base64 PNG or JPEG images"):
        model.predict(sent.assign(image_base64=[sent["image_base64"][0], "bm90IGFuIGltYWdl", sent["image_base64"][2]]))
    with pytest.raises(MlflowException, match="column image: rows 1 name files outside the server's directory"):
        model.predict(pd.DataFrame({"image": [frame["image"][0], "../../etc/passwd"]}))
    tracking.client()
    scores = versions.score_version(params, "1", frame)
    assert 0.0 <= scores["mask"] <= 1.0 and set(scores) == {"mask", "depth", "shape"}

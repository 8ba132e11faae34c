"""The MMoE paper's synthetic tasks: the correlation sets how related the labels are, the
seed fixes the function, streams give fresh rows of it, and the pipeline prepares and
validates them like any table."""

import numpy as np
import pytest
import yaml

from components.config import Params, SyntheticConfig, load_params
from components.data.synthetic import synthetic_rows, task_function
from components.jobs import prepare, validate
from tests.helpers.projects import REPO


def _label_correlation(correlation: float) -> float:
    config = SyntheticConfig(correlation=correlation, features=20)
    frame = synthetic_rows(config, 5000, stream=7)
    return float(np.corrcoef(frame["y1"], frame["y2"])[0, 1])


def test_correlation_one_is_one_function_and_zero_shares_nothing():
    assert _label_correlation(1.0) > 0.99  # the same function, apart from ε
    assert abs(_label_correlation(0.0)) < 0.1  # independent directions: 1/sqrt(5000) noise
    assert 0.2 < _label_correlation(0.5) < 0.8


def test_the_seed_is_the_function_and_streams_are_fresh_rows_of_it():
    config = SyntheticConfig(correlation=0.5, features=10)
    weights, alpha, beta = task_function(config)
    again, *_ = task_function(config)
    assert np.array_equal(weights, again) and len(alpha) == len(beta) == 10
    assert np.allclose(weights @ weights.T, [[1.0, 0.5], [0.5, 1.0]])  # unit scale, cosine p
    other, *_ = task_function(config.model_copy(update={"seed": 1}))
    assert not np.allclose(weights, other)
    first, second = synthetic_rows(config, 50, stream=0), synthetic_rows(config, 50, stream=1)
    assert not np.allclose(first["x_000"], second["x_000"])
    assert synthetic_rows(config, 50, stream=0).equals(first)


def test_more_tasks_than_directions_is_a_config_error():
    with pytest.raises(ValueError, match="features >= tasks"):
        SyntheticConfig(tasks=5, features=4)


def test_the_example_prepares_and_validates(tmp_path):
    raw = yaml.safe_load((REPO / "examples/synthetic/params.yaml").read_text())
    raw["data"]["synthetic"]["rows"] = {"train": 1200, "val": 300, "test": 300}
    raw["data"]["synthetic"]["features"] = 8
    raw["validation"]["docs_dir"] = "reports/data_docs"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)
    assert params.data.input.columns == [f"x_{i:03d}" for i in range(8)]
    prepare.run(params, tmp_path)
    validate.run(params, tmp_path)
    assert sorted(p.name for p in (tmp_path / "data").glob("*.parquet")) == [
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]


def test_synthetic_input_is_its_features():
    raw = yaml.safe_load((REPO / "examples/synthetic/params.yaml").read_text())
    raw["data"]["input"] = {"kind": "text", "columns": ["x_000"]}
    with pytest.raises(ValueError, match="source synthetic gives features input"):
        Params.model_validate(raw)

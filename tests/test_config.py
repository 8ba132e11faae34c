"""params.yaml is validated: unknown keys and choices are errors that list the valid ones."""

import pytest
import yaml

from components.config import Params, ParamsError, load_params, upgrade_stored
from components.jobs.layout import load_checked_params
from tests.helpers.projects import REPO, tiny_params_dict


def write(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_params_load():
    params = load_params(REPO / "params.yaml")
    assert set(params.tasks) == {"left", "right", "sum"}
    assert params.tasks["sum"].type == "regression"


def test_unknown_key_lists_valid_keys(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["epochz"] = 3
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, raw))
    message = str(error.value)
    assert "training.epochz: unknown key" in message
    assert "batch_size" in message and "max_epochs" in message


def test_a_renamed_key_names_its_new_name_and_stored_versions_load(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["epochs"] = raw["training"].pop("max_epochs")
    with pytest.raises(ParamsError, match=r"training\.epochs: unknown key \(renamed: use training\.max_epochs\)"):
        load_params(write(tmp_path, raw))
    from components.config import Params, upgrade_stored

    assert Params.model_validate(upgrade_stored(raw)).training.max_epochs == 2  # a version registered before
    assert "epochs" in raw["training"]  # the stored dict itself is left as it was


def test_unknown_key_inside_a_task_lists_task_keys(tmp_path):
    raw = tiny_params_dict()
    raw["tasks"]["left"]["weight"] = 2
    with pytest.raises(ParamsError, match=r"tasks\.left\.weight: unknown key; valid keys here: .*label"):
        load_params(write(tmp_path, raw))


def test_unknown_choice_lists_valid_choices(tmp_path):
    raw = tiny_params_dict()
    raw["tasks"]["left"]["type"] = "segmentaton"
    with pytest.raises(
        ParamsError, match=r"tasks\.left: unknown type 'segmentaton'; valid: classification, multilabel, regression"
    ):
        load_checked_params(write(tmp_path, raw))


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("gradient", {"name": "cagrad", "c": -0.1}, r"training\.gradient\.c: .*greater than or equal to 0"),
        (
            "gradient",
            {"name": "nash_mtl", "update_every": 0},
            r"training\.gradient\.update_every: .*greater than or equal to 1",
        ),
        (
            "loss_weighting",
            {"name": "dwa", "temperature": 0},
            r"training\.loss_weighting\.temperature: .*greater than 0",
        ),
        ("sgd_momentum", 1.0, r"training\.sgd_momentum: .*less than 1"),
        # strict types: ``epochs: true`` trained for 1 epoch (issue 25, case 10)
        ("max_epochs", True, r"training\.max_epochs: Input should be a valid integer"),
        ("max_epochs", 3.0, r"training\.max_epochs: Input should be a valid integer"),
        ("bf16", 1, r"training\.bf16: Input should be a valid boolean"),
    ],
)
def test_training_settings_are_type_and_range_checked(tmp_path, key, value, rule):
    raw = tiny_params_dict()
    raw["training"][key] = value
    with pytest.raises(ParamsError, match=rule):
        load_params(write(tmp_path, raw))


def test_a_method_setting_sits_beside_its_name_and_lists_its_keys(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["loss_weighting"] = {"name": "dwa", "temprature": 3.0}
    with pytest.raises(
        ParamsError, match=r"training\.loss_weighting\.temprature: unknown key; valid keys here: name, temperature"
    ):
        load_params(write(tmp_path, raw))
    raw["training"]["loss_weighting"] = "balanced"
    with pytest.raises(
        ParamsError,
        match=r"training\.loss_weighting\.name: unknown method 'balanced'; valid: equal, fixed, uncertainty, dwa",
    ):
        load_params(write(tmp_path, raw))
    raw["training"]["loss_weighting"] = {"name": "dwa", "temperature": 3.0}
    assert load_params(write(tmp_path, raw)).training.loss_weighting.temperature == 3.0
    raw["training"]["loss_weighting"] = "famo"  # a name alone takes the method's defaults
    assert load_params(write(tmp_path, raw)).training.loss_weighting.lr == 0.025


@pytest.mark.parametrize(
    ("old", "value", "new"),
    [
        ("dwa_temperature", 3.0, "training.loss_weighting: {name: dwa, temperature: ...}"),
        ("fixed_weights", {"left": 2.0}, "training.loss_weighting: {name: fixed, weights: ...}"),
        ("cagrad_c", 0.1, "training.gradient: {name: cagrad, c: ...}"),
        ("gradient_on", "features", "training.gradient: {name: <method>, compare_on: ...}"),
    ],
)
def test_a_flat_method_setting_of_old_names_its_new_place(tmp_path, old, value, new):
    raw = tiny_params_dict()
    raw["training"][old] = value
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, raw))
    assert f"training.{old}: unknown key (moved beside the method's name: {new})" in str(error.value)


def test_a_version_stored_with_flat_method_settings_loads_in_the_new_shape():
    stored = tiny_params_dict()
    stored["training"] |= {
        "loss_weighting": "dwa",
        "dwa_temperature": 3.0,
        "famo_lr": 0.1,  # another method's setting had no effect: dropped
        "gradient": "cagrad",
        "gradient_on": "features",
        "cagrad_c": 0.2,
        "nash_mtl_update_every": 5,
    }
    training = Params.model_validate(upgrade_stored(stored)).training
    assert training.loss_weighting.model_dump() == {"name": "dwa", "temperature": 3.0}
    assert training.gradient.model_dump() == {"name": "cagrad", "c": 0.2, "compare_on": "features"}


def test_features_need_a_method_that_weighs_from_the_gramian(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["gradient"] = {"name": "nash_mtl", "compare_on": "features"}
    with pytest.raises(ParamsError, match=r"gradient nash_mtl cannot weigh .* those that can: normalize, pcgrad"):
        load_params(write(tmp_path, raw))


def test_every_setting_is_documented():
    """The configuration reference is generated from these descriptions."""
    from components.config import Strict
    from components.config.methods import MethodSettings

    def models(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from models(sub)

    undocumented = [
        f"{model.__name__}.{name}"
        for model in set(models(Strict)) - {MethodSettings}
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert not undocumented, undocumented


def test_classification_needs_num_classes(tmp_path):
    raw = tiny_params_dict()
    del raw["tasks"]["left"]["num_classes"]
    with pytest.raises(ParamsError, match=r"tasks\.left: a classification task needs num_classes"):
        load_checked_params(write(tmp_path, raw))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")


def test_fingerprint_tracks_values():
    a = load_params(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["training"]["max_epochs"] += 1
    from components.config import Params

    assert a.fingerprint() == load_params(REPO / "params.yaml").fingerprint()
    assert a.fingerprint() != Params.model_validate(raw).fingerprint()
    raw["training"]["max_epochs"] -= 1
    raw["affinity"]["epochs"] += 3  # a diagnostic's setting: no retrain
    raw["orchestration"]["push"] = not raw["orchestration"]["push"]
    assert a.fingerprint() == Params.model_validate(raw).fingerprint()


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("data", "dir", "../elsewhere"), ("validation", "docs_dir", "/tmp/docs"), ("data", "dir", "data/../../up")],
)
def test_paths_stay_inside_the_project_unless_allowed(tmp_path, section, key, value):
    raw = tiny_params_dict()
    raw[section][key] = value
    with pytest.raises(
        ParamsError, match=rf"{section}\.{key}: '{value}' is outside the project; .*allow_external_paths"
    ):
        load_params(write(tmp_path, raw))
    raw["allow_external_paths"] = True
    assert getattr(getattr(load_params(write(tmp_path, raw)), section), key) == value


def test_refresh_and_input_files_are_confined_too(tmp_path):
    raw = tiny_params_dict()
    raw["orchestration"]["refresh"] = {"source": "path", "path": "/srv/incoming"}
    with pytest.raises(ParamsError, match="orchestration.refresh.path: '/srv/incoming' is outside the project"):
        load_params(write(tmp_path, raw))
    raw["orchestration"]["refresh"] = {"source": "path", "path": "incoming/today"}
    assert load_params(write(tmp_path, raw)).orchestration.refresh.path == "incoming/today"


def test_a_model_name_with_a_quote_is_refused(tmp_path):
    raw = tiny_params_dict()
    raw["registry"]["model_name"] = "bob's-model"
    with pytest.raises(ParamsError, match=r"registry\.model_name: String should match pattern"):
        load_params(write(tmp_path, raw))


def test_a_tuning_space_names_known_settings_with_ordered_ranges(tmp_path):
    raw = tiny_params_dict()
    raw["tuning"]["space"] = {"momentum": {"low": 0.1, "high": 0.9}}
    with pytest.raises(ParamsError, match=r"tuning\.space\.momentum.*'lr', 'weight_decay' or 'dropout'"):
        load_params(write(tmp_path, raw))
    raw["tuning"]["space"] = {"lr": {"low": 0.01, "high": 0.001, "log": True}}
    with pytest.raises(ParamsError, match=r"tuning\.space\.lr: Value error, high 0\.001 must exceed low 0\.01"):
        load_params(write(tmp_path, raw))
    raw["tuning"]["space"] = {"weight_decay": {"low": 0.0, "high": 0.01, "log": True}}
    with pytest.raises(ParamsError, match="a log range needs low > 0"):
        load_params(write(tmp_path, raw))


def test_a_symbolic_link_out_of_the_project_is_refused(tmp_path):
    """``data.dir: linkdir``, a link to a folder outside the project, passed the textual rule
    and ``validate`` read outside data (issue 25, case 13)."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "inner").mkdir(parents=True)
    outside.mkdir()
    (project / "linkdir").symlink_to(outside)
    (project / "alias").symlink_to(project / "inner")
    raw = tiny_params_dict()
    raw["data"]["dir"] = "linkdir"
    with pytest.raises(ParamsError, match=r"data\.dir: 'linkdir' leads outside the project \(to .*outside, through"):
        load_checked_params(write(project, raw))
    raw["data"]["dir"] = "alias"  # a link that stays inside is fine
    assert load_checked_params(write(project, raw)).data.dir == "alias"
    raw["data"]["dir"], raw["allow_external_paths"] = "linkdir", True
    assert load_checked_params(write(project, raw)).data.dir == "linkdir"


def test_a_whole_number_still_reads_as_a_float(tmp_path):
    """Strict types refuse ``epochs: true`` (above), not ``lr: 1`` or a schedule's whole numbers."""
    raw = tiny_params_dict()
    raw["training"] = {"lr": 1, "loss_weighting": {"name": "schedule", "schedule": {"left": [[1, 0.0], [3, 1.0]]}}}
    training = load_params(write(tmp_path, raw)).training
    assert training.lr == 1.0 and training.loss_weighting.schedule == {"left": [(1.0, 0.0), (3.0, 1.0)]}


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict()) + "seed: 3\n")  # seed: 0 is already above
    with pytest.raises(
        ParamsError, match=r"not valid YAML: .*key 'seed' is given twice \(lines \d+ and \d+\); keep one"
    ):
        load_params(path)


@pytest.mark.parametrize(
    ("section", "key", "value", "ceiling"),
    [
        ("training", "max_epochs", 1_000_000_000, "max_epochs"),
        ("training", "seeds", 1_000_000, "seeds"),
        ("serving", "max_batch_rows", 1_000_000_000_000, "max_batch_rows"),
        ("tuning", "trials", 100_000, "tuning_trials"),
    ],
)
def test_a_setting_above_its_ceiling_is_refused_unless_the_ceiling_is_raised(tmp_path, section, key, value, ceiling):
    """No upper bound let a typo run for days or defeat the 413 (issue 25, case 12)."""
    raw = tiny_params_dict()
    raw.setdefault(section, {})[key] = value
    with pytest.raises(
        ParamsError, match=rf"{section}\.{key} {value:,} is above its ceiling .*raise ceilings\.{ceiling}"
    ):
        load_params(write(tmp_path, raw))
    raw["ceilings"] = {ceiling: value}
    params = load_params(write(tmp_path, raw))
    assert getattr(getattr(params, section), key) == value
    higher = Params.model_validate({**raw, "ceilings": {ceiling: value * 2}})
    assert higher.fingerprint() == params.fingerprint()  # a ceiling allows; it does not change the model

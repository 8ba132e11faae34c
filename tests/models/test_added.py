"""A task added to a trained network (``mtl add-task``): the old tasks run exactly as the
base network ran them, the new head reads the features of the task it names, and a
registered version's network is rebuilt from its parameters and ``added`` record."""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from components.cli import app
from components.config import Params
from components.data.encoders import FittedFeatures
from components.models import MMoEModel, build_model
from components.models.added import AddedTasksModel, FeatureHeads, ResidualAdapter, adapters_for, build_with_added
from components.tasks import build_tasks
from tests.helpers.projects import REPO, iris_dict


def iris_params(tmp_path, sharing: str) -> Params:
    raw = iris_dict(tmp_path)
    raw["model"] = {"backbone": "mlp", "sharing": sharing, "mlp": {"hidden": [8, 4], "dropout": 0.0}}
    return Params.model_validate(raw)


@pytest.mark.parametrize("sharing", ["hard", "mmoe", "ple"])
def test_the_old_tasks_answer_as_the_base_network_did_and_the_new_head_reads_the_named_tasks_features(
    tmp_path, sharing
):
    params = iris_params(tmp_path, sharing)
    old, reads = list(params.tasks), list(params.tasks)[-1]
    torch.manual_seed(0)
    base = build_model(params, build_tasks(params.tasks), features=FittedFeatures(3, ())).eval()
    head = torch.nn.Linear(4, 1)
    extended = AddedTasksModel(base, {"new": head}, {"new": reads}, {}).eval()
    x = torch.randn(6, 3)
    with torch.no_grad():
        before, after = base(x, old), extended(x, [*old, "new"])
        expected = head(base.task_features(x, [reads])[reads])
    assert all(torch.equal(before[task], after[task]) for task in old)
    assert torch.equal(after["new"], expected)
    if sharing == "mmoe":  # the gates give each task its own features: the named one's are read
        assert isinstance(base, MMoEModel)
        assert not torch.equal(base.task_features(x, old)[old[0]], base.task_features(x, old)[old[1]])


def test_a_registered_versions_network_is_rebuilt_from_its_parameters_and_added_record(tmp_path):
    """What serving does: ``build_with_added`` on the version's parameters (the base tasks and
    the new one) takes the state dict ``add-task`` saved and answers as that network did."""
    params = iris_params(tmp_path, "ple")
    raw = params.model_dump(mode="json")
    raw["tasks"]["new"] = dict(raw["tasks"][next(iter(raw["tasks"]))])
    version_params = Params.model_validate(raw)
    tasks = build_tasks(version_params.tasks)
    torch.manual_seed(0)
    base = build_model(params, build_tasks(params.tasks), features=FittedFeatures(3, ()))
    added = {"new": {"reads": next(iter(params.tasks)), "width": 4, "adapter": 2}}
    saved = AddedTasksModel(base, {"new": tasks["new"].head(4)}, {"new": added["new"]["reads"]}, adapters_for(added))
    saved.adapters["new"].up.weight.data.normal_()  # a trained adapter, not the identity it starts as
    saved.eval()
    rebuilt = build_with_added(version_params, tasks, added, features=FittedFeatures(3, ()))
    rebuilt.load_state_dict(saved.state_dict())
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert all(torch.equal(saved(x)[t], rebuilt.eval()(x)[t]) for t in version_params.tasks)


def test_the_adapter_starts_as_the_identity_and_only_the_heads_train_on_cached_features():
    adapter = ResidualAdapter(width=4, hidden=3)
    x = torch.randn(5, 4)
    assert torch.equal(adapter(x), x)
    heads = FeatureHeads({"new": torch.nn.Linear(4, 1)}, {"new": adapter})
    assert heads.shared_parameters() == []  # nothing in it is shared: the trunk stays frozen outside it
    assert len(heads.task_parameters("new")) == 6


def test_add_task_reads_must_name_a_task(tmp_path):
    raw = iris_dict(tmp_path) | {"add_task": {"reads": "petal"}}
    with pytest.raises(ValueError, match=r"add_task.reads: unknown task 'petal'; valid: species, petal_width"):
        Params.model_validate(raw)


def test_adding_a_task_params_yaml_lacks_says_which_tasks_it_has(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    result = CliRunner().invoke(app, ["add-task", "parity", "--params", str(params), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "no task 'parity' under tasks:" in result.output and "tasks there: left, right, sum" in result.output
    assert "Traceback" not in result.output
    assert yaml.safe_load(params.read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())


def test_an_added_regression_task_behind_an_adapter_answers_in_its_labels_units(tmp_path):
    """The adapter sits on the features, not around the head: a task's own ``predict`` still
    finds its head's methods (regression destandardizes with them)."""
    params = iris_params(tmp_path, "hard")
    raw = params.model_dump(mode="json")
    raw["tasks"]["width_again"] = dict(raw["tasks"]["petal_width"])
    version_params = Params.model_validate(raw)
    tasks = build_tasks(version_params.tasks)
    added = {"width_again": {"reads": "species", "width": 4, "adapter": 2}}
    network = build_with_added(version_params, tasks, added, features=FittedFeatures(3, ())).eval()
    with torch.no_grad():
        output = network(torch.randn(5, 3), ["width_again"])["width_again"]
        answer = tasks["width_again"].predict(network.heads["width_again"], output)
    assert answer.shape == (5,) and bool(torch.isfinite(answer).all())

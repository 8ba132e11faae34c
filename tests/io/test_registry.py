"""Registry operations on a real MLflow registry in a temporary SQLite database."""

import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.io import registry
from components.selection import PromotionDecision
from tests.helpers.projects import REPO, tiny_params_dict

NAME = "tiny-mtl"


@pytest.fixture
def versions(mlflow_db, tmp_path):
    """Three registered versions with the tags registration writes; none has aliases yet."""
    client = MlflowClient(mlflow_db, registry_uri=mlflow_db)
    client.create_registered_model(NAME)
    for number, (verdict, delta, left) in enumerate(
        [("accepted", 0.02, 0.95), ("rejected", -0.01, 0.90), ("accepted", 0.03, 0.96)], 1
    ):
        source = tmp_path / f"model{number}"
        source.mkdir()
        version = client.create_model_version(NAME, str(source))
        for key, value in {
            "verdict": verdict,
            "delta_m": str(delta),
            "test.left": str(left),
            "data_version": f"dvc:{number}",
        }.items():
            client.set_model_version_tag(NAME, version.version, key, value)
    return client


def aliases(client):
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_champion_moves_keep_the_previous_one(versions):
    registry.apply_aliases(NAME, "1", PromotionDecision(True, "accepted; no champion yet"))
    assert aliases(versions) == {"challenger": "1", "champion": "1"}
    registry.apply_aliases(NAME, "2", PromotionDecision(False, "verdict is rejected"))
    assert aliases(versions) == {"challenger": "2", "champion": "1"}
    registry.apply_aliases(NAME, "3", PromotionDecision(True, "accepted"))
    assert aliases(versions) == {"challenger": "3", "champion": "3", "previous-champion": "1"}
    assert versions.get_model_version(NAME, "2").tags["promotion"] == "verdict is rejected"


def test_rollback_and_undo(versions):
    registry.apply_aliases(NAME, "1", PromotionDecision(True, "first"))
    registry.apply_aliases(NAME, "3", PromotionDecision(True, "better"))
    assert registry.rollback(NAME) == ("3", "1")
    assert aliases(versions)["champion"] == "1" and aliases(versions)["previous-champion"] == "3"
    assert "from v3" in versions.get_model_version(NAME, "1").tags["rollback"]
    assert "replaced by v1" in versions.get_model_version(NAME, "3").tags["rolled_back"]
    assert registry.rollback(NAME) == ("1", "3")  # a second rollback undoes the first
    assert aliases(versions)["champion"] == "3"


def test_rollback_without_previous_champion_is_refused(versions):
    registry.apply_aliases(NAME, "1", PromotionDecision(True, "first"))
    with pytest.raises(registry.RegistryError, match="no version has the alias 'previous-champion'"):
        registry.rollback(NAME)
    assert aliases(versions)["champion"] == "1"


def test_version_rows(versions):
    registry.apply_aliases(NAME, "1", PromotionDecision(True, "first"))
    rows = registry.version_rows(NAME)
    assert [r["version"] for r in rows] == ["3", "2", "1"]
    assert rows[2]["aliases"] == ["challenger", "champion"] and rows[1]["verdict"] == "rejected"
    assert rows[0]["test"] == {"left": 0.96} and rows[0]["delta_m"] == pytest.approx(0.03)


@pytest.mark.slow
def test_cli_status_and_rollback(versions, mlflow_db, tmp_path):
    registry.apply_aliases(NAME, "1", PromotionDecision(True, "first"))
    registry.apply_aliases(NAME, "3", PromotionDecision(True, "better"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    cli = [sys.executable, "-m", "components.cli"]
    status = subprocess.run(
        [*cli, "status", "-p", str(tmp_path / "params.yaml")], cwd=REPO, capture_output=True, text=True
    )
    assert status.returncode == 0 and "champion" in status.stdout and "dvc:3" in status.stdout
    rolled = subprocess.run(
        [*cli, "rollback", "-p", str(tmp_path / "params.yaml")], cwd=REPO, capture_output=True, text=True
    )
    assert rolled.returncode == 0 and "champion v3 -> v1" in rolled.stdout
    missing = tiny_params_dict()
    missing["registry"]["model_name"] = "nothing-here"
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(missing))
    failed = subprocess.run(
        [*cli, "status", "-p", str(tmp_path / "missing.yaml")], cwd=REPO, capture_output=True, text=True
    )
    assert failed.returncode == 1 and "no registered model named 'nothing-here'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_forced_promotion_needs_a_reason(tiny_params, tmp_path):
    from components.jobs.promote import run as promote

    with pytest.raises(registry.RegistryError, match="--force needs --reason"):
        promote(tiny_params, tmp_path, "1", force=True)

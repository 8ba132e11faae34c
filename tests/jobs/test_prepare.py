"""prepare, the first stage, stops at once on a params.yaml that dvc.yaml reads more of
than it holds (DVC would stop only on reaching the stage, after the trainings)."""

from __future__ import annotations

import shutil

import yaml

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

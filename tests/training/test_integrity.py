"""Signed checkpoints: with MTL_SIGNING_KEY, a checkpoint rewritten together with its manifest
hash (the attack a hash beside the file cannot stop) is refused at select and register."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from components.config import Params
from components.jobs import register
from components.jobs.layout import MTL_DIR, SELECTION_REPORT
from components.training.checkpoints import MANIFEST, checkpoint_digest, load_checkpoint, weights_path
from components.training.integrity import SIGNING_KEY_ENV, CheckpointError, signature_path
from components.training.resume import Resume, find_state, state_path
from tests.helpers.projects import accepting, tiny_params_dict
from tests.helpers.stages import run_until_select, train_tiny


def _rewrite_weights(path) -> str:
    """What someone who can write models/ does: new weights, and the matching sha256."""
    weights = load_file(weights_path(path))
    save_file({name: torch.zeros_like(tensor) for name, tensor in weights.items()}, weights_path(path))
    return checkpoint_digest(path)


def test_a_rewritten_checkpoint_with_a_matching_hash_passes_without_a_key_and_is_refused_with_one(
    tiny_params, tiny_frames, tmp_path, monkeypatch
):
    unsigned = tmp_path / "unsigned"
    train_tiny(tiny_params, tiny_frames, unsigned)
    assert not list(unsigned.glob("*.sig"))
    load_checkpoint(unsigned / "epoch_001.pt", _rewrite_weights(unsigned / "epoch_001.pt"))  # the documented limit

    monkeypatch.setenv(SIGNING_KEY_ENV, "a secret the project folder does not hold")
    signed = tmp_path / "signed"
    train_tiny(tiny_params, tiny_frames, signed)
    entry = json.loads((signed / MANIFEST).read_text())[0]
    load_checkpoint(signed / entry["checkpoint"], entry["sha256"])
    with pytest.raises(CheckpointError, match="signature does not match"):
        load_checkpoint(signed / "epoch_001.pt", _rewrite_weights(signed / "epoch_001.pt"))
    signature_path(signed / "epoch_002.pt").unlink()
    with pytest.raises(CheckpointError, match="not signed"):
        load_checkpoint(signed / "epoch_002.pt")
    with pytest.raises(CheckpointError, match="not signed"):
        load_checkpoint(unsigned / "epoch_002.pt")  # trained without the key: refused once it is set


def test_a_tampered_resume_state_is_never_loaded_with_a_key(tiny_params, tiny_frames, tmp_path, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "k")

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tiny(tiny_params, tiny_frames, tmp_path, resume=Resume("key"), on_epoch=stop)
    assert find_state(tmp_path, "key") is not None
    state = torch.load(state_path(tmp_path), weights_only=True)
    state["model"] = {name: torch.zeros_like(t) for name, t in state["model"].items()}
    torch.save(state, state_path(tmp_path))
    assert find_state(tmp_path, "key") is None  # the training starts over instead


@pytest.mark.slow
def test_register_refuses_a_checkpoint_swapped_after_selection(tmp_path, mlflow_db, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SIGNING_KEY_ENV, "nightly-secret")
    raw = accepting(tiny_params_dict())
    raw["training"]["max_epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = Params.model_validate(raw)
    parent = run_until_select(params, tmp_path)
    selection = json.loads((tmp_path / SELECTION_REPORT).read_text())
    selection["sha256"] = _rewrite_weights(tmp_path / MTL_DIR / selection["checkpoint"])
    (tmp_path / SELECTION_REPORT).write_text(json.dumps(selection))
    with pytest.raises(CheckpointError, match="signature does not match"):
        register.run(params, tmp_path, parent)
    assert not (tmp_path / "reports/registration.json").exists()

"""Adding a loss weighting, followed once: a ``halved`` method (half the plain sum, with a
setting of its own) is one new module under ``components/weighting/`` and its settings class
in the union of ``components/config/methods.py``, in a copy of the library; nothing else is
touched, and ``params.yaml`` takes it, lists it among the valid names and trains with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.helpers.projects import REPO

MODULE = '''"""``halved``: the plain sum times a factor (a test's method)."""

from __future__ import annotations

from torch import Tensor, nn

from components.config.methods import Halved
from components.weighting.base import LossWeighting


class HalvedWeighting(LossWeighting):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, losses: Tensor) -> Tensor:
        return self.factor * losses.sum()


def build(settings: Halved, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    return HalvedWeighting(settings.factor)
'''

SETTINGS = '''

class Halved(MethodSettings):
    """The plain sum times a factor."""

    paper: ClassVar[str] = "a test's method"
    name: Literal["halved"] = "halved"
    factor: float = 0.5
    """What the sum is multiplied by."""
'''

SCRIPT = """
import json, tempfile, torch
from pathlib import Path
from components.config import LOSS_WEIGHTINGS, ParamsError, TrainingConfig, MLPConfig, TaskConfig
from components.models.backbones import MLPBackbone
from components.models.sharing import HardSharingModel
from components.tasks import build_tasks
from components.training.loader import TensorSplit
from components.training.loop import train
from components.weighting import build_weighting

config = TrainingConfig(max_epochs=2, batch_size=4, loss_weighting={"name": "halved", "factor": 0.25})
weighting = build_weighting(config, ["a", "b"], shared_layer=[])
tasks = build_tasks({n: TaskConfig(type="classification", label=n, num_classes=2) for n in ("a", "b")})
heads = {n: torch.nn.Linear(4, 2) for n in tasks}
model = HardSharingModel(MLPBackbone(MLPConfig(hidden=[4]), in_features=3), heads)
split = TensorSplit(torch.randn(8, 3), {n: torch.arange(8) % 2 for n in tasks})
with tempfile.TemporaryDirectory() as scratch:
    history = train(model, tasks, split, split, config, 0, Path(scratch), log=lambda line: None)
try:
    TrainingConfig(loss_weighting={"name": "halved", "factr": 1})
    refused = ""
except Exception as error:
    refused = str(error)
print(json.dumps({
    "names": list(LOSS_WEIGHTINGS),
    "value": weighting(torch.tensor([1.0, 3.0])).item(),
    "epochs": len(history),
    "refused": refused,
}))
"""


def test_a_new_loss_weighting_is_one_module_and_its_settings(tmp_path):
    shutil.copytree(REPO / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "components" / "weighting" / "halved.py").write_text(MODULE)
    methods = tmp_path / "components" / "config" / "methods.py"
    text = methods.read_text()
    union = "Equal | Fixed | Uncertainty | DWA | FAMO | GradNorm | Schedule"
    assert union in text
    registered = text.replace(union, f"{union} | Halved")
    methods.write_text(registered.replace("\n\nLossWeightingConfig = ", SETTINGS + "\n\nLossWeightingConfig = ", 1))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["names"][-1] == "halved"  # the config's choices come from the union
    assert found["value"] == 1.0  # 0.25 x (1 + 3): the module's method, with its own setting
    assert found["epochs"] == 2  # a real training with it
    assert "factr" in found["refused"] and "Extra inputs are not permitted" in found["refused"]

"""What a served model's code imports, against what its requirements list."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from tests.helpers.projects import REPO, run

_IMPORTS_OF_A_SERVED_MODEL = """
import builtins, json, sys
from importlib import metadata
direct = set()
original = builtins.__import__

def recording(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and (globals or {}).get("__name__", "").split(".")[0] == "components":
        direct.add(name.split(".")[0])
    return original(name, globals, locals, fromlist, level)

builtins.__import__ = recording
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_json(sys.argv[2], orient="split"))
model.unwrap_python_model().score(pd.read_json(sys.argv[3], orient="split"))
owners = metadata.packages_distributions()
print(json.dumps({top: owners[top] for top in sorted(direct) if top in owners and top != "components"}))
"""


def unlisted_imports(model_uri: str, request: pd.DataFrame, labeled: pd.DataFrame, env: dict) -> set[str]:
    """The packages a served model's own code imports (loaded, answering ``request`` and
    scoring ``labeled`` rows as the health check does, in a fresh process) that no
    distribution in its requirements.txt provides. Imports libraries make for themselves are theirs to
    declare: torchmetrics, for one, imports transformers whenever it is installed."""
    import mlflow
    from packaging.requirements import Requirement

    with tempfile.TemporaryDirectory() as scratch:
        paths = [Path(scratch) / "request.json", Path(scratch) / "labeled.json"]
        request.to_json(paths[0], orient="split")
        labeled.to_json(paths[1], orient="split")
        command = [sys.executable, "-c", _IMPORTS_OF_A_SERVED_MODEL, model_uri, *map(str, paths)]
        result = run(command, REPO, env)
    assert result.returncode == 0, result.stderr[-3000:]
    owners = json.loads(result.stdout.strip().splitlines()[-1])  # top-level module -> distributions
    listed = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    names = {Requirement(line).name.lower() for line in listed if line and not line.startswith("-")}
    return {module for module, dists in owners.items() if not {d.lower() for d in dists} & names}


def png_base64(pixels) -> str:
    """One square greyscale image (its flat pixels, 0..255) as a PNG file in base64 text,
    as a client sends it in a request's image column."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    flat = np.asarray(pixels, dtype=np.uint8)
    side = int(round(len(flat) ** 0.5))
    buffer = io.BytesIO()
    Image.fromarray(flat.reshape(side, side)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()

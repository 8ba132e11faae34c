"""Process-wide settings, made once at start-up by the entry points (``mtl``, the flows),
never at import or inside library functions.

- no telemetry: Prefect, GX and DVC analytics off (the network reaches only package indexes);
- MLflow: the project's SQLite store unless ``MLFLOW_TRACKING_URI`` names another (the
  project is ``DVC_ROOT`` when DVC runs the stage, so ``dvc exp run --temp`` and queued
  experiments, which run in a temporary copy, log to the project's store), and no artifact
  progress bars;
- quiet logs: GX, Hugging Face and MLflow's pyfunc logger at ERROR, and the warnings that
  do not apply here filtered (the reasons are beside each).

Example::

    >>> configure()
    >>> os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"]
    'false'
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",  # Prefect, MLflow and Hugging Face read it; DVC does not
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TRANSFORMERS_VERBOSITY": "error",  # the unused pooler weights of an encoder are expected, not news
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def default_tracking_uri() -> str:
    """The project's SQLite store: in the DVC project running this stage, else here."""
    project = os.environ.get("DVC_ROOT")
    return f"sqlite:///{Path(project).resolve() / 'mlflow.db'}" if project else DEFAULT_TRACKING_URI


def configure() -> None:
    """Sets the defaults above; a value already in the environment wins."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_TRACKING_URI", default_tracking_uri())
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # The pyfunc wrapper is stateless until load_context, so cloudpickle's warning does not
    # apply; class predictions are integers by design, so the missing-values hint does not either.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")

"""Process-wide settings, made once at start-up by the entry points (``mtl``, the flows),
never at import or inside library functions.

- no telemetry: Prefect, GX and DVC analytics off (the network reaches only package indexes);
- MLflow: the project's SQLite store unless ``MLFLOW_TRACKING_URI`` names another, and no
  artifact progress bars;
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

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_TRACKING_URI": DEFAULT_TRACKING_URI,
    "TRANSFORMERS_VERBOSITY": "error",  # the unused pooler weights of an encoder are expected, not news
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def configure() -> None:
    """Sets the defaults above; a value already in the environment wins."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # The pyfunc wrapper is stateless until load_context, so cloudpickle's warning does not
    # apply; class predictions are integers by design, so the missing-values hint does not either.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")

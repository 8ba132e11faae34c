"""MLflow tracking: one parent run per pipeline run, one nested run per training.

``dvc repro`` runs each stage in its own process, so the parent run cannot live in one
process's memory: the first stage that needs it opens a run tagged as a pipeline run and
with its invocation (the ``dvc`` process running the stages), later stages of the same
invocation find the open one, and ``register`` closes it. A failing stage marks it
failed; one an ended invocation left open is ended KILLED instead of adopted. The Prefect
flow opens the parent itself and passes its id down.

All calls go through ``MlflowClient`` with explicit run ids, never the fluent API's
active-run stack, so concurrent trainings in one process cannot cross-log. The store is
``MLFLOW_TRACKING_URI`` (``components.startup`` defaults it to ``sqlite:///mlflow.db``).

Example::

    >>> import tempfile
    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as scratch, mock.patch.dict(
    ...     os.environ, {"MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db"}
    ... ):
    ...     parent = start_pipeline_run("doctest")
    ...     print(open_pipeline_run("doctest") == parent)   # a later stage finds the open run
    ...     end_run(parent)
    ...     print(open_pipeline_run("doctest") == parent)   # a closed one is never adopted
    True
    False
"""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path

import psutil
from mlflow.entities import Dataset, DatasetInput, Experiment, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from sqlalchemy.exc import IntegrityError

from components.errors import PipelineError
from components.io.invocation import invocation
from components.startup import DEFAULT_TRACKING_URI

ROLE_TAG = "mtl.role"
#: the process that owns a pipeline run's invocation (:func:`invocation`)
INVOCATION_TAG = "mtl.invocation"
#: what the MLflow UI reads to open an experiment on its training runs
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def tracking_uri() -> str:
    """The tracking store: ``MLFLOW_TRACKING_URI``, else the project's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def client() -> MlflowClient:
    """A client of the tracking store and model registry the environment names."""
    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI", uri))


class CopiedRegistry(PipelineError):
    """The MLflow database keeps its artifacts in another project's folder."""


def _database() -> Path | None:
    """The SQLite tracking database, when the tracking store is one."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    return Path(urllib.parse.unquote(parsed.path)).resolve() if parsed.scheme in ("", "file") else None


def _check_artifacts_are_ours(found: Experiment) -> None:
    """A project folder copied with its ``mlflow.db`` keeps artifact locations that name the
    original folder (MLflow stores them absolute): runs and versions logged in the copy would
    write into the original's ``mlruns/``. Refused when the location lies beside another
    project's database."""
    database, location = _database(), _local_path(found.artifact_location)
    if database is None or location is None or location.is_relative_to(database.parent):
        return
    other = location.parent / database.name
    if other.exists() and not (database.exists() and other.samefile(database)):
        raise CopiedRegistry(
            f"the MLflow database {database} keeps experiment {found.name!r}'s artifacts in {location}, "
            f"beside another project's database ({other}): it was copied from there, and what is logged here would "
            "be written into that project. Move this mlflow.db aside to start a registry of the copy's own, or "
            "point MLFLOW_TRACKING_URI at the original"
        )


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created if needed (its artifacts in ``mlruns/`` beside a
    SQLite database, wherever the process runs), and marked as model training so the MLflow
    UI opens it on its runs rather than on GenAI traces."""
    found = client().get_experiment_by_name(name)
    if found is None:
        database = _database()
        artifacts = (database.parent / "mlruns").as_uri() if database is not None else None
        try:
            return client().create_experiment(
                name, artifact_location=artifacts, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
            )
        except MlflowException as error:
            # another process created it between our lookup and our insert
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            found = client().get_experiment_by_name(name)
            if found is None:
                raise
    _check_artifacts_are_ours(found)
    if EXPERIMENT_KIND_TAG not in found.tags:
        client().set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return found.experiment_id


def _alive(owner: str) -> bool:
    """Whether the process an invocation names still runs (the same process, not a reused pid)."""
    pid, _, started = owner.partition("@")
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (psutil.Error, ValueError):
        return False


def start_pipeline_run(experiment: str, name: str | None = None, role: str = "pipeline") -> str:
    """A new parent run for one pipeline run (or, with another ``role``, for runs such as a
    method comparison's, which stages never adopt), tagged with this process's invocation."""
    run = client().create_run(
        experiment_id(experiment),
        run_name=name or time.strftime(f"{role}-%Y%m%d-%H%M%S"),
        tags=resolve_tags({ROLE_TAG: role, INVOCATION_TAG: invocation()}),
    )
    return run.info.run_id


def _running_pipeline_run(experiment: str) -> str | None:
    """The RUNNING pipeline run of this invocation. One left RUNNING by an invocation that
    has ended (a stage that finished on its own, a killed ``dvc repro``) is stale: it is
    ended KILLED, never adopted. One of another invocation still running is left alone."""
    found = client().get_experiment_by_name(experiment)
    if found is None:
        return None
    running = client().search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'pipeline' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"],
    )
    mine = invocation()
    for run in running:
        owner = run.data.tags.get(INVOCATION_TAG, "")
        if owner == mine:
            return run.info.run_id
        if not _alive(owner):
            client().set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return None


def open_pipeline_run(experiment: str) -> str:
    """This invocation's pipeline run still in progress in ``experiment``, or a new one."""
    return _running_pipeline_run(experiment) or start_pipeline_run(experiment)


def end_run(run_id: str, failed: bool = False, killed: bool = False) -> None:
    """Ends a run FINISHED, FAILED, or KILLED (its process was stopped: it may resume)."""
    status = RunStatus.KILLED if killed else RunStatus.FAILED if failed else RunStatus.FINISHED
    client().set_terminated(run_id, status=RunStatus.to_string(status))


def stopped(error: BaseException) -> bool:
    """Whether ``error`` stopped the process from outside (SIGTERM, Ctrl-C) rather than
    failing it: its runs end KILLED."""
    from components.errors import Terminated

    return isinstance(error, Terminated | KeyboardInterrupt)


def end_orphaned_run(run_id: str) -> bool:
    """Ends as KILLED a run a killed process left RUNNING; False if it had ended or is gone."""
    try:
        run = client().get_run(run_id)
    except MlflowException:
        return False
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        return False
    client().set_terminated(run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return True


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    """Tags ``run_id``."""
    client().log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])


def fail_open_pipeline_run(experiment: str, killed: bool = False) -> None:
    """Marks the pipeline run in progress, if any, FAILED (or KILLED)."""
    run_id = _running_pipeline_run(experiment)
    if run_id is not None:
        end_run(run_id, failed=True, killed=killed)


def start_child_run(parent_run_id: str, name: str, params: dict[str, object], role: str = "training") -> str:
    """A run nested under ``parent_run_id`` with ``params`` logged. Like every run here it
    carries the tags MLflow's fluent API would give it: source file and type, user, and the
    git commit, branch and repository of the code when it runs from a git checkout."""
    parent = client().get_run(parent_run_id)
    run = client().create_run(
        parent.info.experiment_id,
        run_name=name,
        tags=resolve_tags({MLFLOW_PARENT_RUN_ID: parent_run_id, MLFLOW_RUN_NAME: name, ROLE_TAG: role}),
    )
    log_params(run.info.run_id, params)
    return run.info.run_id


def log_params(run_id: str, params: dict[str, object]) -> None:
    """Logs ``params`` on ``run_id``, in as few requests as MLflow allows."""
    client().log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Logs ``metrics`` on ``run_id`` at ``step``, in one request."""
    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
    client().log_batch(run_id, metrics=batch)


#: tries of an insert that can lose a race to another process (:func:`log_dataset`)
_RACE_RETRIES = 5


def log_dataset(run_id: str, name: str, digest: str, source: str, context: str, profile: str) -> None:
    """Records that ``run_id`` read dataset ``name`` (a split), identified by ``digest``
    (the md5 DVC gives the file), in ``context`` (training, validation or test)."""
    dataset = Dataset(name=name, digest=digest, source_type="dvc", source=source, profile=profile)
    inputs = [DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    # MLflow's SQL store looks the dataset up and inserts it if missing in two steps, so
    # trainings started together (seeds fanned out on a pool) race to insert the same split
    # and the losers fail on the table's unique key. A retry finds the winner's row.
    for attempt in range(_RACE_RETRIES):
        try:
            client().log_inputs(run_id, inputs)
            return
        except MlflowException as error:
            if not _lost_insert_race(error) or attempt == _RACE_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))  # not `random`: the trainings' seeded stream is left alone


def _lost_insert_race(error: MlflowException) -> bool:
    """Whether ``error`` is a unique-key violation: the store's own exception when MLflow is
    a local database, its text when it comes back from a tracking server."""
    return isinstance(error.__context__, IntegrityError) or "IntegrityError" in error.message


def flatten(prefix: str, value: object) -> dict[str, object]:
    """Nested dicts as dotted keys, for MLflow params."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    return {prefix: value}

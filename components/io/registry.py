"""Registration and promotion in the MLflow model registry, through aliases.

``challenger`` always moves to the newest version. ``champion`` moves only when the new
version was accepted against its baselines and regresses on no task beyond tolerance
against the current champion's recorded test metrics. A rejected model never becomes
champion. When ``champion`` moves, the version it leaves keeps ``previous-champion``, so
:func:`rollback` can move it back.

Whether a version may become champion is the acceptance policy's call
(``components.selection.promotion_decision``); this module applies the decision.

Example::

    >>> import os, tempfile
    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as scratch, mock.patch.dict(
    ...     os.environ, {"MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db"}
    ... ):
    ...     print(current_champion("nothing-registered"), latest_version("nothing-registered"))
    None None
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException

from components.errors import PipelineError
from components.io.tracking import client
from components.selection import PromotionDecision

T = TypeVar("T")
REGISTRATION_KEY = "registration_key"
INCOMPLETE = "incomplete"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
TEST_METRIC_TAG = "test."
#: why the verdict is what it is (``SelectionReport.reason``)
REASON_TAG = "verdict_reason"
#: the tasks that regress beyond tolerance on test, comma-separated
TEST_WARNINGS_TAG = "test_warnings"


@dataclass(frozen=True)
class Registration:
    """What ``register`` did, as ``reports/registration.json`` holds it."""

    model_name: str
    version: str
    aliases: list[str]
    champion_moved: bool
    reason: str
    #: the pipeline run that registered the version (or found it registered already)
    run_id: str
    model_uri: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_version(cls, model_name: str, version: Any, run_id: str) -> Registration:
        """The registration a complete registered version records, found again by the
        pipeline run ``run_id``."""
        return cls(
            model_name=model_name,
            version=str(version.version),
            aliases=sorted(client().get_model_version(model_name, str(version.version)).aliases),
            champion_moved=False,
            reason=f"already registered as v{version.version}: {version.tags.get('promotion', '')}",
            run_id=run_id,
            model_uri=f"models:/{model_name}/{version.version}",
            tags=dict(version.tags),
        )

    @classmethod
    def read(cls, path: Path) -> Registration | None:
        """The registration recorded at ``path`` (``reports/registration.json``), if any."""
        raw = json.loads(path.read_text()) if path.exists() else {}
        return cls(**raw) if "version" in raw else None


@dataclass(frozen=True)
class NotRegistered:
    """Why ``register`` registered nothing (a DVC experiment), as ``reports/registration.json`` holds it."""

    reason: str
    registered: bool = False

    @classmethod
    def read(cls, path: Path) -> NotRegistered | None:
        """The record at ``path``, if the last ``register`` registered nothing."""
        raw = json.loads(path.read_text()) if path.exists() else {}
        return cls(**raw) if raw.get("registered") is False else None


class RegistryError(PipelineError, RuntimeError):
    """A registry operation that cannot be done as asked; the message says why."""


def registration_key(data_version: str, params_hash: str, checkpoint_sha256: str) -> str:
    """What makes two registrations the same: same data, parameters and checkpoint."""
    return hashlib.sha256(f"{data_version}|{params_hash}|{checkpoint_sha256}".encode()).hexdigest()[:32]


def lock_path(root: Path) -> Path:
    """The lock registrations of one registry take: beside a SQLite database (so every
    project that shares it is serialised), else in the project root."""
    uri = os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        return (database if database.is_absolute() else root / database).with_name(database.name + ".register.lock")
    return root / ".register.lock"


@contextlib.contextmanager
def registration_lock(path: Path) -> Iterator[None]:
    """One registration at a time (an exclusive ``flock``, released when the holder exits,
    even if it is killed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def with_retries(
    action: Callable[[], T],
    attempts: int = 5,
    first_wait: float = 1.0,
    on_retry: Callable[[str], None] = lambda message: None,
) -> T:
    """``action()``, again after 1, 2, 4, … s while the database is locked by another writer
    (SQLite already waits 5 s per statement); a lock that outlasts every attempt is a
    :class:`RegistryError`. Safe for registrations: each step can run again."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:  # MLflow wraps SQLAlchemy's OperationalError in several types
            if "database is locked" not in str(error):
                raise
            if attempt == attempts - 1:
                raise RegistryError(
                    f"the registry stayed locked by another writer through {attempts} attempts"
                ) from None
            wait = first_wait * 2**attempt
            on_retry(f"the registry is locked by another writer; retrying in {wait:g} s ({attempt + 1}/{attempts})")
            time.sleep(wait)
    raise AssertionError("unreachable")


def is_registered(model_name: str) -> bool:
    """Whether the registry knows ``model_name``."""
    try:
        client().get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return True


def version_with_key(model_name: str, key: str) -> Any:
    """The version registered under ``key``, if any (complete or not)."""
    # the key is hex; the model name is compared here, so no name needs quoting in a filter
    found = [v for v in client().search_model_versions(f"tags.{REGISTRATION_KEY} = '{key}'") if v.name == model_name]
    return max(found, key=lambda v: int(v.version)) if found else None


def _version_by_alias(model_name: str, alias: str) -> Any:
    try:
        return client().get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def _test_metrics(tags: dict[str, str]) -> dict[str, float]:
    """Per-task test metrics recorded as ``test.<task>`` tags at registration."""
    return {key[len(TEST_METRIC_TAG) :]: float(value) for key, value in tags.items() if key.startswith(TEST_METRIC_TAG)}


def current_champion(model_name: str) -> tuple[str, dict[str, float]] | None:
    """The champion's version and its recorded per-task test metrics, if there is one."""
    version = _version_by_alias(model_name, CHAMPION)
    return None if version is None else (str(version.version), _test_metrics(version.tags))


def _versions_newest_first(model_name: str) -> list[Any]:
    versions = client().search_model_versions(f"name = '{model_name}'")
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def latest_version(model_name: str) -> tuple[str, dict[str, str]] | None:
    """The newest registered version and its tags, if any."""
    try:
        versions = _versions_newest_first(model_name)
    except MlflowException:
        return None
    return (str(versions[0].version), dict(versions[0].tags)) if versions else None


def alias_version(model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at, if any."""
    version = _version_by_alias(model_name, alias)
    return None if version is None else str(version.version)


def move_champion(model_name: str, version: str) -> None:
    """Points ``champion`` at ``version``; the version it leaves becomes ``previous-champion``."""
    tracker = client()
    current = alias_version(model_name, CHAMPION)
    if current is not None and current != version:
        tracker.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, current)
    tracker.set_registered_model_alias(model_name, CHAMPION, version)


def apply_aliases(model_name: str, version: str, decision: PromotionDecision) -> list[str]:
    """``challenger`` to ``version``, ``champion`` too when the decision says so, each read
    back; then the version is no longer ``incomplete``. Returns its aliases."""
    tracker = client()
    tracker.set_model_version_tag(model_name, version, "promotion", decision.reason)
    tracker.set_registered_model_alias(model_name, CHALLENGER, version)
    if decision.promote:
        move_champion(model_name, version)
    for alias in (CHALLENGER, CHAMPION) if decision.promote else (CHALLENGER,):
        if alias_version(model_name, alias) != version:
            raise RegistryError(f"{model_name}: alias {alias!r} does not point at v{version} after moving it")
    registered = tracker.get_model_version(model_name, version)
    if INCOMPLETE in registered.tags:
        tracker.delete_model_version_tag(model_name, version, INCOMPLETE)
    return sorted(registered.aliases)


def check_version(version: str) -> None:
    """A version is a whole number: MLflow reads anything else as a stage name, and its error
    then lists stages, which this registry does not use."""
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(
            f"version {version!r} is not a registered version: versions are whole numbers (1, 2, ...); "
            "`mtl status` lists them"
        )


def load_version(model_name: str, version: str) -> Any:
    """The pyfunc model of one registered version."""
    import mlflow.pyfunc

    check_version(version)
    try:
        return mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    except MlflowException as error:
        raise RegistryError(f"{model_name} v{version}: {error.message}") from None


def record_promotion(
    model_name: str, version: str, decision: PromotionDecision, forced: bool, reason: str | None
) -> None:
    """Tags the decision on the version and moves ``champion`` if it says so."""
    tracker = client()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tracker.set_model_version_tag(model_name, version, "promotion", f"{decision.reason} ({stamp})")
    if forced:
        tracker.set_model_version_tag(model_name, version, "forced", "true")
        tracker.set_model_version_tag(model_name, version, "force_reason", reason or "")
    if decision.promote:
        move_champion(model_name, version)


def rollback(model_name: str) -> tuple[str, str]:
    """``champion`` goes back to ``previous-champion``; returns (from, to) versions.

    The version rolled back from becomes ``previous-champion``, so a second rollback undoes
    the first. Both versions get a tag recording the move.
    """
    current = alias_version(model_name, CHAMPION)
    previous = alias_version(model_name, PREVIOUS_CHAMPION)
    if current is None or previous is None:
        missing = CHAMPION if current is None else PREVIOUS_CHAMPION
        raise RegistryError(f"cannot roll back {model_name}: no version has the alias '{missing}'")
    tracker = client()
    move_champion(model_name, previous)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tracker.set_model_version_tag(model_name, previous, "rollback", f"champion again from v{current} at {stamp}")
    tracker.set_model_version_tag(model_name, current, "rolled_back", f"replaced by v{previous} at {stamp}")
    return current, previous


def version_rows(model_name: str) -> list[dict[str, object]]:
    """Every version, newest first: aliases, verdict, Δm, per-task test metrics, data version."""
    versions = _versions_newest_first(model_name)
    if not versions:
        raise RegistryError(f"no registered model named {model_name!r}")
    # search results carry no aliases; the registered model maps each alias to its version
    aliases: dict[str, list[str]] = {}
    for alias, number in client().get_registered_model(model_name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in versions:
        tags = version.tags
        rows.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases.get(str(version.version), [])),
                "verdict": tags.get("verdict", "-"),
                "delta_m": float(tags["delta_m"]) if "delta_m" in tags else None,
                "reason": tags.get(REASON_TAG, "-"),
                "test": _test_metrics(tags),
                "test_warnings": [t for t in tags.get(TEST_WARNINGS_TAG, "").split(",") if t],
                "data_version": tags.get("data_version", "-"),
            }
        )
    return rows

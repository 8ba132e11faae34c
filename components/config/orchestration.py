"""``orchestration``: schedules, data refresh, work pools and the health check."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class ScheduleConfig(Strict):
    cron: str
    """Five cron fields: minute hour day month weekday."""
    timezone: str = "UTC"
    """IANA time zone the cron fields are read in, such as UTC or Europe/Paris."""

    @model_validator(mode="after")
    def _valid(self) -> ScheduleConfig:
        if len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} needs five fields: minute hour day month weekday")
        if self.timezone not in zoneinfo.available_timezones():
            raise ValueError(f"timezone {self.timezone!r} is not an IANA name such as UTC or Europe/Paris")
        return self


class RefreshConfig(Strict):
    source: Literal["prepare", "path", "dvc_pull", "dvc_update"] = "prepare"
    """Where the nightly run gets fresh data: prepare     rebuild the splits from the packaged source (the demo)
    path        copy train/val/test Parquet files from `path` dvc_pull    `dvc pull` the data directory recorded
    in dvc.lock dvc_update  `dvc update` the imported dataset `target` (a .dvc file from `dvc import`)"""
    path: str | None = None
    """source path: the directory holding train/val/test.parquet."""
    target: str | None = None
    """source dvc_update: the imported dataset's .dvc file."""

    @model_validator(mode="after")
    def _needs_location(self) -> RefreshConfig:
        if self.source == "path" and not self.path:
            raise ValueError("refresh.source 'path' needs refresh.path, a directory of train/val/test.parquet")
        if self.source == "dvc_update" and not self.target:
            raise ValueError("refresh.source 'dvc_update' needs refresh.target, the imported dataset's .dvc file")
        return self


class HealthConfig(Strict):
    canary_rows: Annotated[int, Field(gt=0)] = 500
    """Test rows the hourly health check scores the champion on."""
    schedule: ScheduleConfig = ScheduleConfig(cron="0 * * * *")
    """When the health check runs."""


class OrchestrationConfig(Strict):
    nightly: ScheduleConfig = ScheduleConfig(cron="0 2 * * *")
    """When the nightly retraining runs."""
    refresh: RefreshConfig = RefreshConfig()
    """Where the nightly run gets fresh data."""
    push: bool = True
    """Push data and artifacts with `dvc push` after a nightly training; null remote = DVC's default."""
    dvc_remote: str | None = None
    """The DVC remote ``push`` sends to; null: DVC's default remote."""
    work_pool: str = "cpu"
    """Work pool for the cpu deployments (nightly, health check)."""
    gpu_pool: str | None = None
    """Work pool whose workers run the trainings (baselines and MTL) through the `train` deployment; null trains in
    the pipeline's own process."""
    train_deployment: str = "mtl-train/train"
    """The Prefect deployment (flow/deployment) that trains on gpu_pool's workers."""
    health: HealthConfig = HealthConfig()
    """The hourly check of the champion on canary rows."""
    project_lock_wait_s: Annotated[float, Field(ge=0)] = 0
    """One run per project directory: how long a second start waits for the first to finish before it stops with a
    message naming the holder."""

"""The whole of ``params.yaml``: every section, and the rules that span sections."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path, PurePosixPath

from pydantic import model_validator

from components.config.add_task import AddTaskConfig
from components.config.affinity import AffinityConfig
from components.config.base import Strict
from components.config.ceilings import CeilingsConfig
from components.config.data import DataConfig, InputConfig
from components.config.methods import Fixed, Schedule
from components.config.model import BACKBONE_INPUTS, ModelConfig
from components.config.orchestration import OrchestrationConfig
from components.config.registry import RegistryConfig, ServingConfig
from components.config.selection import SelectionConfig
from components.config.tasks import TaskConfig
from components.config.training import TrainingConfig
from components.config.tuning import TuningConfig
from components.config.validation import ValidationConfig


class Params(Strict):
    seed: int = 0
    """Seeds the splits, the initial weights, the data order, the bootstrap and the tuning sampler."""
    data: DataConfig = DataConfig()
    """Where the rows come from and what the model reads."""
    tasks: dict[str, TaskConfig]
    """The tasks, by name: each one's label, type and tolerance."""
    model: ModelConfig = ModelConfig()
    """The shared backbone and how the tasks share it."""
    training: TrainingConfig = TrainingConfig()
    """Shared by the single-task baselines and the MTL model."""
    selection: SelectionConfig = SelectionConfig()
    """The acceptance gate."""
    validation: ValidationConfig = ValidationConfig()
    """The data contract every split meets before training."""
    registry: RegistryConfig = RegistryConfig()
    """Where models are registered."""
    serving: ServingConfig = ServingConfig()
    """What a registered model accepts per request."""
    orchestration: OrchestrationConfig = OrchestrationConfig()
    """Schedules, data refresh, work pools and the health check."""
    affinity: AffinityConfig = AffinityConfig()
    """The inter-task affinity diagnostic (``mtl affinity``)."""
    tuning: TuningConfig = TuningConfig()
    """The hyperparameter search every baseline and the MTL model get alike."""
    add_task: AddTaskConfig = AddTaskConfig()
    """How ``mtl add-task NAME`` trains a head for a new task on the champion's frozen features."""
    ceilings: CeilingsConfig = CeilingsConfig()
    """Upper bounds on the settings whose typos cost days; raise one deliberately."""
    allow_external_paths: bool = False
    """Paths in these parameters stay inside the project (relative, no ".." out of it) unless this is true: a typo
    or a copied config must not write outside it."""

    @model_validator(mode="after")
    def _settings_below_their_ceilings(self) -> Params:
        ceilings = self.ceilings
        guarded = {
            "training.max_epochs": (self.training.max_epochs, "max_epochs"),
            "training.seeds": (self.training.seeds, "seeds"),
            "serving.max_batch_rows": (self.serving.max_batch_rows, "max_batch_rows"),
            "tuning.trials": (self.tuning.trials, "tuning_trials"),
        }
        for key, (value, ceiling) in guarded.items():
            limit = getattr(ceilings, ceiling)
            if value > limit:
                raise ValueError(
                    f"{key} {value:,} is above its ceiling {limit:,}; lower it, or raise ceilings.{ceiling} "
                    "deliberately"
                )
        return self

    @model_validator(mode="after")
    def _paths_inside_project(self) -> Params:
        if self.allow_external_paths:
            return self
        for key, value in self.paths().items():
            path = PurePosixPath(value)
            if path.is_absolute() or ".." in PurePosixPath(posixpath.normpath(value)).parts:
                raise ValueError(
                    f"{key}: {value!r} is outside the project; use a path inside it, or set allow_external_paths: true"
                )
        return self

    def paths_leaving(self, root: Path) -> dict[str, Path]:
        """Every path these parameters name that leads outside ``root`` once symbolic links
        are resolved (the rule above reads the text alone: a link inside the project passes it)."""
        inside = root.resolve()
        resolved = {key: (root / value).resolve() for key, value in self.paths().items()}
        return {key: target for key, target in resolved.items() if not target.is_relative_to(inside)}

    def paths(self) -> dict[str, str]:
        """Every path these parameters name, by its key."""
        found = {
            "data.dir": self.data.dir,
            "validation.docs_dir": self.validation.docs_dir,
            "tuning.storage": self.tuning.storage,
        }
        if self.orchestration.refresh.path:
            found["orchestration.refresh.path"] = self.orchestration.refresh.path
        if isinstance(self.data.files, str):
            found["data.files"] = self.data.files
        elif self.data.files:
            found |= {f"data.files.{split}": path for split, path in self.data.files.model_dump().items()}
        for name, dataset in self.data.datasets.items():
            found |= {f"data.datasets.{name}.files.{split}": path for split, path in dataset.files.model_dump().items()}
        return found

    @model_validator(mode="after")
    def _tasks_declared_fit_the_data_and_the_weighting(self) -> Params:
        if not self.tasks:
            raise ValueError("declare at least one task under tasks")
        self._tasks_fit_data()
        weighting = self.training.loss_weighting
        named = {Fixed: "weights", Schedule: "schedule"}.get(type(weighting))
        unknown = set(getattr(weighting, named)) - set(self.tasks) if named else set()
        if unknown:
            raise ValueError(
                f"training.loss_weighting.{named} names unknown task(s) {sorted(unknown)}; "
                f"valid: {', '.join(self.tasks)}"
            )
        return self

    @model_validator(mode="after")
    def _added_task_reads_a_task(self) -> Params:
        reads = self.add_task.reads
        if reads is not None and reads not in self.tasks:
            raise ValueError(f"add_task.reads: unknown task {reads!r}; valid: {', '.join(self.tasks)}")
        return self

    @model_validator(mode="after")
    def _null_limits_name_inputs(self) -> Params:
        inputs = {c for spec in self.data.inputs().values() for c in spec.all_columns()}
        unknown = sorted(set(self.validation.max_null_fraction_per_column) - inputs)
        if unknown:
            raise ValueError(
                f"validation.max_null_fraction_per_column names {unknown}, not input columns; valid: "
                f"{', '.join(sorted(inputs)) or 'none (this input has no named columns)'}; a task's labels have "
                "tasks.<task>.max_missing_fraction"
            )
        return self

    @model_validator(mode="after")
    def _gradient_method_fits_the_sharing(self) -> Params:
        gradient = self.training.gradient
        if gradient.compare_on == "features" and self.model.sharing != "hard":
            raise ValueError(
                f"training.gradient.compare_on features needs one representation every task reads: model.sharing "
                f"hard (with {self.model.sharing} each task reads its own), or compare_on: parameters"
            )
        if self.model.sharing == "soft_penalty" and gradient.name != "sum":
            raise ValueError(
                f"training.gradient {gradient.name} combines the tasks' gradients on shared parameters; "
                "model.sharing soft_penalty shares none (each task has its own column): use gradient sum"
            )
        return self

    @model_validator(mode="after")
    def _grouping_needs_a_random_split(self) -> Params:
        if self.validation.shared_text == "group" and not self.data.splits_at_random():
            raise ValueError(
                "validation.shared_text group keeps each text in one split of a random split: it needs one "
                "file (data.files as a path) without data.split_column; use fail or warn with split files"
            )
        return self

    def task_input(self, name: str) -> InputConfig:
        """The input the rows of task ``name`` carry."""
        return self.data.inputs()[self.tasks[name].dataset]

    def _tasks_fit_data(self) -> None:
        datasets = self.data.datasets
        backbone_reads = BACKBONE_INPUTS[self.model.backbone]
        for name, task in self.tasks.items():
            if datasets and task.dataset not in datasets:
                raise ValueError(
                    f"task {name!r}: dataset {task.dataset!r} is not one of data.datasets: {', '.join(datasets)}"
                )
            if not datasets and task.dataset is not None:
                raise ValueError(f"task {name!r} names dataset {task.dataset!r}, but data.datasets is empty")
            kind = self.task_input(name).kind
            if datasets and self.task_input(name).feature_part() is not None and kind == "text":
                raise ValueError(
                    f"data.datasets {task.dataset!r}: columns beside the text need one table, not datasets"
                )
            if kind not in backbone_reads:
                raise ValueError(
                    f"backbone {self.model.backbone} reads {' or '.join(backbone_reads)} input, "
                    f"not the {kind} input of task {name!r}"
                )
        unused = set(datasets) - {task.dataset for task in self.tasks.values()}
        if unused:
            raise ValueError(f"data.datasets {sorted(unused)} feed no task")

    def fingerprint(self) -> str:
        """Stable hash of what determines the model, recorded with every registered version.

        Orchestration settings (schedules, pools, remotes), ``ceilings`` and
        ``allow_external_paths`` change where and when training runs, or what is allowed, not
        its result, ``affinity`` configures a diagnostic the pipeline never runs, and
        ``add_task`` only ``mtl add-task`` reads (its training key holds it), so they are left
        out: editing them does not force a retrain.
        """
        left_out = {"orchestration", "allow_external_paths", "affinity", "ceilings", "add_task"}
        canonical = json.dumps(
            self.model_dump(mode="json", exclude=left_out),
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def training_fingerprint(self) -> str:
        """Stable hash of what a training's weights depend on (the sections ``train_mtl``
        reads): ``register`` refuses weights trained under other values. Selection, registry
        and serving settings may change between training and registration."""
        trained = self.model_dump(mode="json", include={"seed", "data", "tasks", "model", "training", "tuning"})
        return hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:16]

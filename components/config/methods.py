"""``training.loss_weighting`` and ``training.gradient``: which MTL method a training uses, and
that method's own settings beside its name. Each union below is a discriminated union on
``name`` (as fmind's jobs choose parts by ``KIND``): the only list of the methods' names and
knobs. ``components.weighting`` and ``components.gradients`` build each from its settings,
one module per method, found by its name.

A name alone is the method with its defaults::

    >>> loss_weighting("dwa")
    DWA(name='dwa', temperature=2.0)
    >>> gradient_method({"name": "cagrad", "c": 0.0, "compare_on": "features"}).c
    0.0
    >>> gradient_method({"name": "nash_mtl", "compare_on": "features"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for tagged-union[...]
    ...
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, TypeAdapter, model_validator

from components.config.base import Strict


class MethodSettings(Strict):
    """What every method's settings share: its name (``name: <method>``; in ``params.yaml``
    the name alone is shorthand for the method with its defaults)."""

    #: the method's paper, for the docs' tables (docs/hooks.py)
    paper: ClassVar[str] = ""
    name: str
    """The method (each method's settings class fixes it to its own name)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A method's ``name`` is described by its class docstring, for the reference."""
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields["name"]
        if field.description is None and cls.__doc__:
            field.description = f"``{field.default}``: {cls.__doc__.strip()}"


# ---- loss weightings: how the per-task losses become the one scalar minimised ----


class Equal(MethodSettings):
    """Σ L_i: every task's loss counts once."""

    paper: ClassVar[str] = "the plain sum"
    name: Literal["equal"] = "equal"


class Fixed(MethodSettings):
    """Σ c_i L_i with constant weights c_i."""

    paper: ClassVar[str] = "constant weights"
    name: Literal["fixed"] = "fixed"
    weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    """Each task's weight c_i, by task name; a task not listed weighs 1."""


class Uncertainty(MethodSettings):
    """½·e^(−s_i)·L_i + ½·s_i with learned log-variances s_i."""

    paper: ClassVar[str] = 'Kendall et al. 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses"'
    name: Literal["uncertainty"] = "uncertainty"


class DWA(MethodSettings):
    """Dynamic Weight Average: weights from the ratio of each task's last two epoch losses."""

    paper: ClassVar[str] = 'Liu et al. 2019, "End-to-End Multi-Task Learning with Attention"'
    name: Literal["dwa"] = "dwa"
    temperature: Annotated[float, Field(gt=0)] = 2.0
    """T of the softmax over the loss ratios: a larger T weighs the tasks more evenly."""


class FAMO(MethodSettings):
    """Fast Adaptive Multitask Optimization: weights that even out the tasks' loss decrease."""

    paper: ClassVar[str] = 'Liu et al. 2023, "FAMO: Fast Adaptive Multitask Optimization"'
    name: Literal["famo"] = "famo"
    lr: Annotated[float, Field(gt=0)] = 0.025
    """Learning rate of FAMO's own optimizer of the task-weight logits."""


class GradNorm(MethodSettings):
    """Weights learned so that the tasks' gradient norms on the last shared layer train at equal rates."""

    paper: ClassVar[str] = 'Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing"'
    name: Literal["gradnorm"] = "gradnorm"
    alpha: Annotated[float, Field(ge=0)] = 1.5
    """α, the restoring force towards equal training rates: 0 equalises the gradient norms alone."""


class Schedule(MethodSettings):
    """Each task's weight follows a piecewise-linear schedule over epochs."""

    paper: ClassVar[str] = "a per-task schedule"
    name: Literal["schedule"] = "schedule"
    # a point is [epoch, weight]: YAML writes a list, so this one field takes a list for the pair
    schedule: dict[str, list[Annotated[tuple[float, Annotated[float, Field(ge=0)]], Field(strict=False)]]] = {}
    """By task name, ``[[epoch, weight], ...]``, linear between the points; a task not listed weighs 1."""


LossWeightingConfig = Annotated[
    Equal | Fixed | Uncertainty | DWA | FAMO | GradNorm | Schedule, Field(discriminator="name")
]


# ---- gradient methods: how the per-task gradients on the shared parameters become one update ----


class GradientSettings(MethodSettings):
    """What every gradient method shares: where it compares the tasks."""

    #: the method weighs the tasks from the Gramian of their gradients alone, so it can
    #: run on the shared representation (``compare_on: features``)
    gramian: ClassVar[bool] = True
    compare_on: Literal["parameters", "features"] = "parameters"
    """Where the tasks are compared: parameters (the exact method, on the shared parameters'
    Jacobian: T backward passes) or features (MGDA-UB, Sener & Koltun 2018: the Gramian of the
    tasks' gradients on the shared representation, then one backward pass). Not ``on``: YAML
    reads that key as a boolean."""

    @model_validator(mode="after")
    def _features_need_a_gramian(self) -> GradientSettings:
        if self.compare_on == "features" and not self.gramian:
            raise ValueError(
                f"gradient {self.name} cannot weigh the tasks from the Gramian of their gradients on the shared "
                f"representation (compare_on: features); those that can: {', '.join(GRAMIAN_METHODS)}; "
                "or compare_on: parameters"
            )
        return self


class Sum(GradientSettings):
    """Plain backpropagation of the (weighted) loss sum."""

    paper: ClassVar[str] = "backpropagation"
    gramian: ClassVar[bool] = False
    name: Literal["sum"] = "sum"


class Normalize(GradientSettings):
    """Each task's shared gradient rescaled to the mean norm, then summed."""

    paper: ClassVar[str] = "gradient-norm balancing"
    name: Literal["normalize"] = "normalize"


class PCGrad(GradientSettings):
    """Each task's gradient projected off the others' it conflicts with."""

    paper: ClassVar[str] = 'Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"'
    name: Literal["pcgrad"] = "pcgrad"


class CAGrad(GradientSettings):
    """The update that most improves the worst-off task within a ball around the mean gradient."""

    paper: ClassVar[str] = 'Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning"'
    name: Literal["cagrad"] = "cagrad"
    c: Annotated[float, Field(ge=0)] = 0.5
    """The ball's radius: 0 follows the mean gradient; a larger c moves towards the worst-off task's direction."""


class MGDA(GradientSettings):
    """The minimum-norm point of the convex hull of the tasks' gradients."""

    paper: ClassVar[str] = 'Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"'
    name: Literal["mgda"] = "mgda"


class UPGrad(GradientSettings):
    """Each task's gradient projected onto the dual cone of all of them, then averaged."""

    paper: ClassVar[str] = 'Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"'
    name: Literal["upgrad"] = "upgrad"


class NashMTL(GradientSettings):
    """The Nash bargaining solution between the tasks' gradients."""

    paper: ClassVar[str] = 'Navon et al. 2022, "Multi-Task Learning as a Bargaining Game"'
    gramian: ClassVar[bool] = False
    name: Literal["nash_mtl"] = "nash_mtl"
    update_every: Annotated[int, Field(ge=1)] = 1
    """Solve the bargaining problem every k-th step and reuse the task weights in between (the
    paper's update_weights_every): each solve is a cvxpy call, 13 ms here."""


class IMTLG(GradientSettings):
    """Impartial MTL: the update whose projections on every task's unit gradient are equal."""

    paper: ClassVar[str] = 'Liu et al. 2021, "Towards Impartial Multi-task Learning"'
    name: Literal["imtl_g"] = "imtl_g"


class AlignedMTL(GradientSettings):
    """The tasks' gradients aligned by the condition number of their Gramian."""

    paper: ClassVar[str] = 'Senushkin et al. 2023, "Independent Component Alignment for Multi-Task Learning"'
    name: Literal["aligned_mtl"] = "aligned_mtl"


class GradDrop(GradientSettings):
    """Per coordinate, keep the gradients of one sign, drawn by how much they agree."""

    paper: ClassVar[str] = (
        'Chen et al. 2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout"'
    )
    gramian: ClassVar[bool] = False
    name: Literal["graddrop"] = "graddrop"


GradientConfig = Annotated[
    Sum | Normalize | PCGrad | CAGrad | MGDA | UPGrad | NashMTL | IMTLG | AlignedMTL | GradDrop,
    Field(discriminator="name"),
]


def members(union: Any) -> tuple[type[MethodSettings], ...]:
    """The settings classes of a discriminated union, in its order."""
    return get_args(get_args(union)[0])


def method_name(settings: type[MethodSettings]) -> str:
    """The ``name`` a settings class answers to."""
    return str(settings.model_fields["name"].default)


LOSS_WEIGHTINGS: tuple[str, ...] = tuple(method_name(m) for m in members(LossWeightingConfig))
GRADIENT_METHODS: tuple[str, ...] = tuple(method_name(m) for m in members(GradientConfig))
#: the gradient methods that weigh the tasks from the Gramian of their gradients alone, so
#: ``compare_on: features`` can run them on the shared representation
GRAMIAN_METHODS: tuple[str, ...] = tuple(
    method_name(m) for m in members(GradientConfig) if issubclass(m, GradientSettings) and m.gramian
)
_LOSS_WEIGHTING: TypeAdapter[Any] = TypeAdapter(LossWeightingConfig)
_GRADIENT: TypeAdapter[Any] = TypeAdapter(GradientConfig)


def loss_weighting(raw: str | dict[str, Any]) -> MethodSettings:
    """The loss weighting ``raw`` names (a name, or a name with settings)."""
    return _LOSS_WEIGHTING.validate_python({"name": raw} if isinstance(raw, str) else raw)


def gradient_method(raw: str | dict[str, Any]) -> GradientSettings:
    """The gradient method ``raw`` names (a name, or a name with settings)."""
    return _GRADIENT.validate_python({"name": raw} if isinstance(raw, str) else raw)

"""mkdocs hooks: a page's ``<!-- config-reference -->`` or ``<!-- methods: ... -->`` marker
becomes a table generated from the schema: each key's type, default and description (its
attribute docstring), section by section, and each MTL method with its paper and settings,
from the unions in ``components.config.methods``. So the reference and the methods' tables
cannot drift from the code. Written here because no mkdocs plugin renders a pydantic schema
as a reader's table; it lives with the docs, not in ``components/``, so no stage depends on it.

Example::

    >>> from components.config import EarlyStoppingConfig
    >>> print(section_table(EarlyStoppingConfig).splitlines()[2])
    | `enabled` | bool | `true` | Stop once the objective has not improved for this many epochs. ...
    >>> "| `dwa` |" in methods_summary(LossWeightingConfig)
    True
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from components.config.methods import GradientConfig, LossWeightingConfig, MethodSettings, members, method_name
from components.config.params import Params

#: where the methods' own settings are listed, by the key that chooses them
METHOD_PAGES = {"loss_weighting": "../methods/loss-weighting.md", "gradient": "../methods/gradients.md"}
CONSTRAINTS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def type_name(annotation: Any) -> str:
    """A reader's name of a field's type: ``a | b`` for choices, ``list of int`` and so on."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return f"[{', '.join(type_name(a) for a in args)}]"
    if origin is dict:
        return f"{type_name(args[0])} → {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def bounds(field: FieldInfo) -> str:
    """The field's range, as ``> 0`` or ``≥ 0, < 1``."""
    found = [f"{CONSTRAINTS[key]} {getattr(m, key)}" for m in field.metadata for key in CONSTRAINTS if hasattr(m, key)]
    return ", ".join(found)


def default(field: FieldInfo) -> str:
    """The field's default as YAML would write it; ``required`` where there is none."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below" if not isinstance(value, MethodSettings) else f"`{value.name}`"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _description(field: FieldInfo) -> str:
    return " ".join((field.description or "").split()).replace("|", "\\|")


def section_table(model: type[BaseModel]) -> str:
    """One table of ``model``'s keys: type (and range), default, description."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = type_name(field.annotation)
        limit = bounds(field)
        rows.append(f"| `{name}` | {kind}{f' ({limit})' if limit else ''} | {default(field)} | {_description(field)} |")
    return "\n".join(rows)


def _sections(model: type[BaseModel], path: str) -> list[tuple[str, type[BaseModel]]]:
    """``model`` and every section under it, by dotted path, depth first."""
    found = [(path, model)]
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if get_origin(annotation) is dict and isinstance(get_args(annotation)[1], type):
            annotation, name = get_args(annotation)[1], f"{name}.<name>"
        if get_origin(annotation) in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = options[0] if len(options) == 1 else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _sections(annotation, f"{path}.{name}" if path else name)
    return found


def reference_markdown() -> str:
    """Every section of ``params.yaml`` and its keys, top level first."""
    parts = []
    for path, model in _sections(Params, ""):
        title = f"`{path}`" if path else "Top level"
        lead = " ".join((model.__doc__ or "").split()) if path else "The sections of `params.yaml`."
        parts += [f"## {title}", "", *([lead, ""] if lead else []), section_table(model), ""]
        for key, page in METHOD_PAGES.items():
            if key in model.model_fields:
                parts += [f"`{key}` takes a method's name and its own settings: [every method]({page}).", ""]
    return "\n".join(parts)


def methods_summary(union: Any) -> str:
    """One row per method of ``union``: its name, what it does, its paper, its settings."""
    rows = ["| `name` | method | paper | settings |", "|---|---|---|---|"]
    for method in members(union):
        knobs = [f"`{k}`" for k in method.model_fields if k not in ("name", "compare_on")]
        summary = " ".join((method.__doc__ or "").split())
        rows.append(f"| `{method_name(method)}` | {summary} | {method.paper} | {', '.join(knobs) or '—'} |")
    return "\n".join(rows)


def methods_markdown(union: Any) -> str:
    """The summary table, then each method's settings."""
    parts = [methods_summary(union), ""]
    for method in members(union):
        settings = {k: f for k, f in method.model_fields.items() if k != "name"}
        if settings:
            table = section_table(method).splitlines()
            parts += [
                f"### `{method_name(method)}`",
                "",
                "\n".join(r for r in table if not r.startswith("| `name`")),
                "",
            ]
    return "\n".join(parts)


def render(marker: str) -> str:
    """What a docs page's ``<!-- marker -->`` stands for."""
    generated = {
        "config-reference": reference_markdown,
        "methods: loss_weighting": lambda: methods_markdown(LossWeightingConfig),
        "methods: gradient": lambda: methods_markdown(GradientConfig),
    }
    if marker not in generated:
        raise KeyError(f"unknown docs marker {marker!r}; valid: {', '.join(generated)}")
    return generated[marker]()


MARKER = re.compile(r"<!-- (config-reference|methods: [a-z_]+) -->")


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replaces every marker on the page with what it stands for."""
    return MARKER.sub(lambda match: render(match.group(1)), markdown)

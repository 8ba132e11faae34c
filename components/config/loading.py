"""Reading ``params.yaml``: errors that name the key and list the valid ones, and the upgrade
of parameters an earlier version stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from components.config.base import ParamsError
from components.config.methods import GradientConfig, LossWeightingConfig, members
from components.config.params import Params

#: keys an earlier version of this code wrote, and the key that holds the setting now
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {("training", "epochs"): ("training", "max_epochs")}
#: flat ``training`` keys of a method's settings, now beside the method's name: the old key ->
#: (``loss_weighting`` or ``gradient``, the method it configured, its key there; None: any method)
MOVED_TO_METHOD: dict[str, tuple[str, str | None, str]] = {
    "fixed_weights": ("loss_weighting", "fixed", "weights"),
    "dwa_temperature": ("loss_weighting", "dwa", "temperature"),
    "gradnorm_alpha": ("loss_weighting", "gradnorm", "alpha"),
    "famo_lr": ("loss_weighting", "famo", "lr"),
    "weight_schedule": ("loss_weighting", "schedule", "schedule"),
    "gradient_on": ("gradient", None, "compare_on"),
    "cagrad_c": ("gradient", "cagrad", "c"),
    "nash_mtl_update_every": ("gradient", "nash_mtl", "update_every"),
}


def moved_hint(key: str) -> str:
    """Where the setting an old flat ``training`` key held lives now."""
    kind, method, new = MOVED_TO_METHOD[key]
    name = method or "<method>"
    return f"moved beside the method's name: training.{kind}: {{name: {name}, {new}: ...}}"


def upgrade_stored(raw: dict) -> dict:
    """Parameters a registered version stored under earlier code, in today's keys: a version
    registered before a rename, or before the methods' settings moved beside their names,
    still loads (and serves, and rolls back). A flat setting of a method the version did not
    use had no effect, and is dropped."""
    upgraded = json.loads(json.dumps(raw))
    for (section, old), (_, new) in RENAMED.items():
        part = upgraded.get(section)
        if isinstance(part, dict) and old in part and new not in part:
            part[new] = part.pop(old)
    training = upgraded.get("training")
    if isinstance(training, dict) and any(key in training for key in MOVED_TO_METHOD):
        chosen = {
            kind: training.get(kind, default) for kind, default in (("loss_weighting", "equal"), ("gradient", "sum"))
        }
        nested = {kind: {"name": name} if isinstance(name, str) else dict(name) for kind, name in chosen.items()}
        for key, (kind, method, new) in MOVED_TO_METHOD.items():
            if key in training:
                value = training.pop(key)
                if method in (None, nested[kind]["name"]) and not (
                    kind == "gradient" and nested[kind]["name"] == "sum"
                ):
                    nested[kind][new] = value
        training |= nested
    return upgraded


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid parameters"]
    for item in error.errors():
        where = ".".join(str(part) for part in _without_tags(item["loc"])) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = item["loc"][:-1]
            valid = _valid_keys(Params, parent)
            renamed = RENAMED.get(tuple(str(part) for part in item["loc"]))
            hint = f" (renamed: use {'.'.join(renamed)})" if renamed else ""
            if item["loc"][:1] == ("training",) and len(item["loc"]) == 2 and item["loc"][1] in MOVED_TO_METHOD:
                hint = f" ({moved_hint(str(item['loc'][1]))})"
            lines.append(f"  {where}: unknown key{hint}; valid keys here: {', '.join(valid)}")
        elif item["type"] == "union_tag_invalid":  # a method name no method answers to
            context = item.get("ctx", {})
            names = str(context.get("expected_tags", "")).replace("'", "")
            lines.append(f"  {where}.name: unknown method {context.get('tag')!r}; valid: {names}")
        elif item["type"] == "literal_error":
            lines.append(f"  {where}: {item['msg']} (got {item['input']!r})")
        else:
            value = item.get("input")
            shown = isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40)
            lines.append(f"  {where}: {item['msg']}" + (f" (got {value!r})" if shown else ""))
    return "\n".join(lines)


#: the methods' unions (as a field's annotation holds them), by identity, to their members
members_of = {id(get_args(union)[0]): members(union) for union in (LossWeightingConfig, GradientConfig)}


def _without_tags(loc: tuple) -> tuple:
    """``loc`` as the file spells it: pydantic puts a discriminated union's tag (the method's
    name) in the path, as in ``training.loss_weighting.dwa.temprature``."""
    return tuple(part for i, part in enumerate(loc) if not (i and loc[i - 1] in ("loss_weighting", "gradient")))


def _valid_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walks ``loc`` through the model's fields to list the keys accepted at that level."""
    current: type[BaseModel] = model
    annotation: object = model
    skip = None  # "dict": the part is a task name; "tag": a method's name
    for part in loc:
        if skip == "dict":  # a task name: the level below is the dict's value type
            skip = None
            continue
        if skip == "tag":  # the method the part names, among the union's members
            current = next(m for m in members_of[id(annotation)] if m.model_fields["name"].default == part)
            skip = None
            continue
        annotation = current.model_fields[str(part)].annotation
        if getattr(annotation, "__origin__", None) is dict:
            annotation = get_args(annotation)[-1]
            skip = "dict"
        elif id(annotation) in members_of:
            skip = "tag"
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return sorted(current.model_fields)


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping: the standard loaders keep the last
    value silently, so an edit below a forgotten line would quietly win (or lose)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """``params.yaml`` validated; a missing, unreadable or invalid file is a :class:`ParamsError`."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ParamsError(_describe(exc, path)) from exc

"""Reading ``params.yaml``: errors that name the key and list the valid ones, and the upgrade
of parameters an earlier version stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from components.config.base import ParamsError
from components.config.params import Params

#: keys an earlier version of this code wrote, and the key that holds the setting now
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {("training", "epochs"): ("training", "max_epochs")}


def upgrade_stored(raw: dict) -> dict:
    """Parameters a registered version stored under earlier code, in today's keys: a version
    registered before a rename still loads (and serves, and rolls back)."""
    upgraded = json.loads(json.dumps(raw))
    for (section, old), (_, new) in RENAMED.items():
        part = upgraded.get(section)
        if isinstance(part, dict) and old in part and new not in part:
            part[new] = part.pop(old)
    return upgraded


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid parameters"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = item["loc"][:-1]
            valid = _valid_keys(Params, parent)
            renamed = RENAMED.get(tuple(str(part) for part in item["loc"]))
            hint = f" (renamed: use {'.'.join(renamed)})" if renamed else ""
            lines.append(f"  {where}: unknown key{hint}; valid keys here: {', '.join(valid)}")
        elif item["type"] == "literal_error":
            lines.append(f"  {where}: {item['msg']} (got {item['input']!r})")
        else:
            lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def _valid_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walks ``loc`` through the model's fields to list the keys accepted at that level."""
    current: type[BaseModel] = model
    skip_dict_key = False
    for part in loc:
        if skip_dict_key:  # a task name: the level below is the dict's value type
            skip_dict_key = False
            continue
        annotation = current.model_fields[str(part)].annotation
        if getattr(annotation, "__origin__", None) is dict:
            annotation = get_args(annotation)[-1]
            skip_dict_key = True
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return sorted(current.model_fields)


def load_params(path: str | Path = "params.yaml") -> Params:
    """``params.yaml`` validated; a missing, unreadable or invalid file is a :class:`ParamsError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ParamsError(_describe(exc, path)) from exc

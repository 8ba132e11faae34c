"""The layout's promises, checked on the source: layers import only downwards, the pure
library never imports Prefect, and every DVC stage lists as deps every module it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

# Lowest first; a module may import its own layer and those below it.
LAYERS = [
    ("components", "components.errors", "components.startup"),
    ("components.config",),
    ("components.data",),
    ("components.tasks",),
    ("components.models", "components.weighting", "components.gradients", "components.selection"),
    ("components.training",),
    ("components.validation",),
    ("components.io",),
    ("components.report",),
    ("components.jobs",),
    ("components.cli", "components.serving"),
]


def layer_of(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    """The ``components`` modules ``path`` imports (at any depth, or only at module level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from components.jobs import prepare` imports the submodule
            found |= {
                f"{node.module}.{alias.name}" for alias in node.names if module_file(f"{node.module}.{alias.name}")
            }
    return {name for name in found if name.split(".")[0] == "components" and module_file(name)}


def with_packages(name: str) -> set[str]:
    """A module and the packages Python imports before it."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(start: set[str]) -> set[Path]:
    """Every module file reached from ``start``; the CLI's own imports are in ``start``
    already (only those of the command that runs)."""
    seen: set[str] = set()
    todo = [m for name in start for m in with_packages(name)]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        if name != "components.cli":
            todo += [m for imported in imported_modules(existing(name)) for m in with_packages(imported)]
    return {existing(name).relative_to(REPO) for name in seen if not is_docstring_only(existing(name))}


def existing(name: str) -> Path:
    path = module_file(name)
    assert path is not None, name
    return path


def is_docstring_only(path: Path) -> bool:
    """A package ``__init__`` with nothing but a docstring cannot change what a stage does."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def command_modules(command: str) -> set[str]:
    """What ``mtl <command>`` imports: the CLI's module-level imports, then the lazy imports
    of the command's function and of the CLI helpers it calls."""
    cli = REPO / "components" / "cli.py"
    tree = ast.parse(cli.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def command_name(function: ast.FunctionDef) -> str:
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and decorator.args and isinstance(decorator.args[0], ast.Constant):
                return str(decorator.args[0].value)
        return function.name.replace("_", "-")

    start = {"components.cli"} | imported_modules(cli, top_level_only=True)
    todo = [next(f for f in functions.values() if command_name(f) == command and f.decorator_list)]
    done: set[str] = set()
    while todo:
        function = todo.pop()
        if function.name in done:
            continue
        done.add(function.name)
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components"):
                start.add(node.module)
                start |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
            if isinstance(node, ast.Name) and node.id.startswith("_") and node.id in functions:
                todo.append(functions[node.id])
    return start


def library_files() -> list[Path]:
    return sorted((REPO / "components").rglob("*.py"))


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_a_layer_above_it(path):
    own = layer_of(module_name(path))
    above = sorted(m for m in imported_modules(path) if layer_of(m) > own)
    assert not above, f"{module_name(path)} (layer {own}) imports {above} from above"


def test_the_library_never_imports_prefect():
    for path in library_files():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(name.split(".")[0] == "prefect" for name in names), path


@pytest.mark.parametrize("dvc_file", ["dvc.yaml", "examples/tweets/dvc.yaml"])
def test_every_stage_lists_every_module_it_runs_as_a_dep(dvc_file):
    directory = (REPO / dvc_file).parent
    stages = yaml.safe_load((REPO / dvc_file).read_text())["stages"]
    for name, stage in stages.items():
        command = stage["cmd"].split("components.cli", 1)[1].split()[0]
        deps = [(directory / dep).resolve().relative_to(REPO) for dep in stage["deps"] if "components" in dep]
        needed = closure(command_modules(command))
        missing = sorted(str(p) for p in needed if not any(p == d or d in p.parents for d in deps))
        assert not missing, f"{dvc_file}: stage {name} runs {missing} but does not list them as deps"

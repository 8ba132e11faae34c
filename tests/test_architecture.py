"""The layout's promises, checked on the source: layers import only downwards, the pure
library never imports Prefect, and every DVC stage lists as deps every module it runs."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers.projects import REPO

# Lowest first; a module may import its own layer and those below it. A module is placed by
# the longest entry that names it or a package above it, and every module must be placed.
LAYERS = [
    (
        "components",
        "components.atomic",
        "components.errors",
        "components.startup",
        "components.objectives",
        "components.torchjd_state",
    ),
    ("components.config",),
    ("components.data",),
    ("components.tasks",),
    ("components.models", "components.weighting", "components.gradients", "components.bootstrap"),
    ("components.training",),
    ("components.selection", "components.diagnosis", "components.affinity"),
    ("components.validation",),
    ("components.io",),
    ("components.report",),
    ("components.jobs",),
    ("components.cli", "components.serving"),
]


def layer_of(module: str, layers: list[tuple[str, ...]] = LAYERS) -> int:
    """The layer of the longest entry that is ``module`` or a package above it; the bare
    ``components`` entry places only the package itself."""
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(layers)
        for prefix in prefixes
        if module == prefix or (prefix != "components" and module.startswith(prefix + "."))
    ]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")
    return max(matches)[1]


def upward_imports(root: Path = REPO) -> list[str]:
    """Every import under ``root/components`` of a module in a layer above the importer's."""
    found = []
    for path in library_files(root):
        name = module_name(path, root)
        own = layer_of(name)
        above = sorted(m for m in imported_modules(path, root=root) if layer_of(m) > own)
        found += [f"{name} (layer {own}) imports {module} (layer {layer_of(module)})" for module in above]
    return found


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str, root: Path = REPO) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path, top_level_only: bool = False, root: Path = REPO) -> set[str]:
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
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}", root)
            }
        elif isinstance(node, ast.Call) and (package := by_name_package(node)):
            # a package whose methods are found by name (importlib) needs every module in it
            found |= {module_name(p, root) for p in root.joinpath(*package.split(".")).glob("*.py")}
    return {name for name in found if name.split(".")[0] == "components" and module_file(name, root)}


def by_name_package(call: ast.Call) -> str | None:
    """``components.weighting`` for ``importlib.import_module(f"components.weighting.{name}")``."""
    function = call.func
    if not (isinstance(function, ast.Attribute) and function.attr == "import_module" and call.args):
        return None
    argument = call.args[0]
    if isinstance(argument, ast.JoinedStr) and argument.values and isinstance(argument.values[0], ast.Constant):
        prefix = str(argument.values[0].value)
        if prefix.startswith("components.") and prefix.endswith("."):
            return prefix[:-1]
    return None


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


def library_files(root: Path = REPO) -> list[Path]:
    return sorted((root / "components").rglob("*.py"))


def test_no_module_imports_a_layer_above_it():
    assert not upward_imports(), "\n".join(upward_imports())


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_has_a_layer(path):
    layer_of(module_name(path))


def test_the_layering_check_fails_on_a_planted_upward_import(tmp_path):
    shutil.copytree(REPO / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    assert upward_imports(tmp_path) == []
    config = tmp_path / "components" / "config" / "__init__.py"
    config = config if config.exists() else tmp_path / "components" / "config.py"
    config.write_text(config.read_text() + "\nfrom components.jobs import select  # planted\n")
    assert "components.config (layer 1) imports components.jobs.select (layer 10)" in upward_imports(tmp_path)


def test_a_new_module_outside_every_layer_is_refused():
    with pytest.raises(AssertionError, match="belongs to no layer"):
        layer_of("components.newcomer")
    assert layer_of("components.jobs.select") == LAYERS.index(("components.jobs",))


def test_the_library_never_imports_prefect():
    for path in library_files():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(name.split(".")[0] == "prefect" for name in names), path


def needed_deps(command: str) -> list[str]:
    """The module deps ``mtl <command>`` needs, as ``dvc.yaml`` lists them: a package folder
    where every module in it is needed (so a file added there is covered), files otherwise."""
    needed = {str(p) for p in closure(command_modules(command))}
    listed: set[str] = set()
    for path in sorted(needed):
        folder = str(Path(path).parent)
        whole = folder != "components" and all(
            str(m.relative_to(REPO)) in needed or is_docstring_only(m) for m in (REPO / folder).rglob("*.py")
        )
        listed.add(folder if whole else path)
    return sorted(d for d in listed if not any(d.startswith(other + "/") for other in listed))


def stage_deps(dvc_file: str) -> dict[str, tuple[str, list[str]]]:
    """Each stage's command and its ``components`` deps, relative to the repository."""
    directory = (REPO / dvc_file).parent
    stages = yaml.safe_load((REPO / dvc_file).read_text())["stages"]
    return {
        name: (
            stage["cmd"].split("components.cli", 1)[1].split()[0],
            [str((directory / dep).resolve().relative_to(REPO)) for dep in stage["deps"] if "components" in dep],
        )
        for name, stage in stages.items()
    }


@pytest.mark.parametrize(
    "dvc_file", ["dvc.yaml", "examples/tweets/dvc.yaml", "examples/census/dvc.yaml", "examples/scenes/dvc.yaml"]
)
def test_every_stage_lists_exactly_the_modules_it_runs_as_deps(dvc_file):
    """Every module a stage runs is a dep (else a change would not re-run it), and no other
    module is (else a change re-runs a stage it cannot affect)."""
    for name, (command, deps) in stage_deps(dvc_file).items():
        assert sorted(deps) == needed_deps(command), f"{dvc_file}: stage {name}: list {needed_deps(command)}"


def test_no_stage_imports_another():
    """A stage module (or another command's) reaches what it shares with others through the
    shared job modules, so changing one stage never re-runs another. The nightly's
    ``refresh`` alone runs whole stages (prepare, sources) by design."""
    entries = {module_name(p) for p in (REPO / "components" / "jobs").glob("*.py") if "\ndef run(" in p.read_text()}
    entries |= {"components.jobs.health"}
    for entry in sorted(entries):
        others = sorted(imported_modules(existing(entry)) & (entries - {entry}))
        assert not others, f"{entry} imports the stage modules {others}; move what they share to a shared job module"


def test_the_select_stage_reads_its_inputs_from_few_modules_and_stays_short():
    """``select`` composes what others compute: the evidence (``jobs.evidence``), the policy
    (``selection``), the diagnosis, the layout and the config; its ``run`` stays readable."""
    path = REPO / "components" / "jobs" / "select.py"
    modules = imported_modules(path, top_level_only=True)
    read = {m for m in modules if not any(other.startswith(m + ".") for other in modules)}
    assert len(read) <= 5, sorted(read)
    run = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert run.end_lineno - run.lineno + 1 < 60

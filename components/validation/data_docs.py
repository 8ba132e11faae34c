"""Data Docs that render with no network: the CDN files Great Expectations links, copied
beside the site from ``data_docs_assets/`` (vendored from npm, see its ``SOURCES.md``), and
every page pointed at the copies.

GX 1.x has no setting for a local static folder: its page templates name CDN addresses, so
the addresses are rewritten after the site is built. A GX upgrade that links a new address
shows up in :func:`external_assets` (the suite checks that it finds none).

Example::

    >>> page = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    >>> localize(page, depth=2)
    '<script src="../../static/vendor/jquery.min.js"></script>'
    >>> external_assets('<link href="https://example.org/x.css"><a href="https://example.org">doc</a>')
    ['https://example.org/x.css']
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ASSETS_DIR = Path(__file__).with_name("data_docs_assets")
VENDOR = "static/vendor"

#: CDN address in GX's templates -> the vendored file (relative to ``data_docs_assets/``)
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-prefers-dark.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed.min.js",
}
#: GX's logos on S3 -> the copy GX ships in the site's own static folder
LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[\w-]+\.png(\?[^\"']*)?")
LOCAL_LOGO = "static/images/logo-long.png"
#: what a page loads: <script src>, <link href>, <img src>
ASSET_REFERENCE = re.compile(
    r"<(?:script|img)\b[^>]*\bsrc=[\"'](https?://[^\"']+)|<link\b[^>]*\bhref=[\"'](https?://[^\"']+)"
)


def localize(page: str, depth: int) -> str:
    """``page`` with every known CDN address replaced by the copy, ``depth`` folders up."""
    up = "../" * depth
    for address, file in CDN_FILES.items():
        page = page.replace(address, f"{up}{VENDOR}/{file}")
    return LOGO.sub(f"{up}{LOCAL_LOGO}", page)


def external_assets(page: str) -> list[str]:
    """The addresses of what ``page`` would load from the network (links to follow are not assets)."""
    return [script or link for script, link in ASSET_REFERENCE.findall(page)]


def make_offline(site: Path) -> list[str]:
    """Copies the vendored files into ``site`` and rewrites its pages; returns what any page
    still loads from the network (empty for the GX release the lock file pins)."""
    shutil.copytree(ASSETS_DIR, site / VENDOR, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    remaining: list[str] = []
    for page in site.rglob("*.html"):
        depth = len(page.relative_to(site).parts) - 1
        text = localize(page.read_text(), depth)
        page.write_text(text)
        remaining += external_assets(text)
    return sorted(set(remaining))

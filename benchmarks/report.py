"""The benchmarks' markdown tables, in the order the README's Performance section shows
them, as one file: ``reports/benchmarks/README.md``.

    $ python benchmarks/report.py
"""

from __future__ import annotations

from common import REPORTS

ORDER = ("step", "peer", "serve", "input", "e2e")


def main() -> None:
    """Concatenates the tables that exist; says which are missing."""
    parts = [(REPORTS / f"{name}.md") for name in ORDER]
    found = [path.read_text() for path in parts if path.exists()]
    missing = [path.stem for path in parts if not path.exists()]
    (REPORTS / "README.md").write_text("## Performance\n\n" + "\n".join(found))
    print(f"written: {REPORTS / 'README.md'}" + (f" (not run: {', '.join(missing)})" if missing else ""))


if __name__ == "__main__":
    main()

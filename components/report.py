"""What a person reads at the end of a run: MTL against the single-task baselines.

The same numbers render as a rich table for the terminal and as markdown for the Prefect
artifact and the MLflow run.
"""

from __future__ import annotations

import sys

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text


def console() -> Console:
    """Rich console for the results; wide enough for the table when output is piped (dvc, CI)."""
    return Console(width=None if sys.stdout.isatty() else 120)


def _rows(selection: dict) -> list[list[str]]:
    rows = []
    for task, entry in selection["tasks"].items():
        direction = "↑" if entry["higher_is_better"] else "↓"
        verdict = "pass" if entry["passed"] else f"FAIL (< -{entry['tolerance']:.0%})"
        rows.append(
            [
                task,
                f"{entry['metric']} {direction}",
                f"{entry['baseline']:.4f}",
                f"{entry['mtl']:.4f}",
                f"{entry['relative_change']:+.2%}",
                verdict,
                f"{entry['baseline_test']:.4f}",
                f"{entry['test']:.4f}",
            ]
        )
    return rows


HEADERS = ["task", "metric", "baseline val", "MTL val", "Δ relative", "verdict", "baseline test", "MTL test"]


def _headline(selection: dict) -> str:
    return (
        f"Δm = {selection['delta_m']:+.2%} (min {selection['min_delta_m']:+.2%}) · "
        f"verdict: {selection['verdict'].upper()} · checkpoint {selection['checkpoint']}"
    )


def _registration_line(registration: dict) -> str:
    aliases = ", ".join(registration["aliases"]) or "none"
    return (
        f"registered {registration['model_name']} v{registration['version']} · aliases: {aliases} · "
        f"champion {'moved' if registration['champion_moved'] else 'unchanged'}: {registration['reason']}"
    )


def render_summary(selection: dict, registration: dict | None, timings: dict[str, float]) -> Group:
    table = Table(title="MTL vs single-task baselines", title_justify="left")
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("task", "metric", "verdict") else "right")
    for row in _rows(selection):
        style = "red" if row[5] != "pass" else None
        table.add_row(*row, style=style)
    colour = "green" if selection["verdict"] == "accepted" else "red"
    parts: list = [table, Text(_headline(selection), style=f"bold {colour}")]
    if registration:
        parts.append(Text(_registration_line(registration)))
    if timings:
        parts.append(Text("stage wall time: " + " · ".join(f"{s} {t:.1f}s" for s, t in timings.items())
                          + f" · total {sum(timings.values()):.1f}s"))
    return Group(*parts)


def tasks_markdown(selection: dict) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(selection)]
    return "\n".join(lines)


def results_markdown(selection: dict, registration: dict | None = None) -> str:
    lines = [tasks_markdown(selection), "", f"**{_headline(selection)}**"]
    if registration:
        lines += ["", _registration_line(registration)]
    return "\n".join(lines) + "\n"


def versions_table(model_name: str, rows: list[dict]) -> Table:
    tasks = sorted({task for row in rows for task in row["test"]})
    table = Table(title=f"{model_name}: registered versions", title_justify="left")
    for header in ["version", "aliases", "verdict", "Δm", *[f"{t} (test)" for t in tasks], "data version"]:
        table.add_column(header)
    for row in rows:
        delta = f"{row['delta_m']:+.2%}" if row["delta_m"] is not None else "-"
        metrics = [f"{row['test'][t]:.4f}" if t in row["test"] else "-" for t in tasks]
        style = "bold green" if "champion" in row["aliases"] else None
        table.add_row(row["version"], ", ".join(row["aliases"]) or "-", row["verdict"], delta, *metrics, row["data_version"], style=style)
    return table


def model_card(
    name: str,
    version: str,
    selection: dict,
    tags: dict[str, str],
    decision_reason: str,
    champion: tuple[str, dict[str, float]] | None,
    methods: dict[str, str],
) -> str:
    """Markdown model card for one registered version (also its registry description)."""
    lines = [
        f"# {name} v{version}",
        "",
        f"**Verdict: {selection['verdict']}** · Δm = {selection['delta_m']:+.2%} · champion decision: {decision_reason}",
        "",
        "## Tasks and metrics",
        "",
        tasks_markdown(selection),
    ]
    if champion is not None:
        champion_version, champion_test = champion
        lines += ["", f"Current champion before this version: v{champion_version}, test "
                  + ", ".join(f"{task} {value:.4f}" for task, value in champion_test.items())]
    lines += [
        "",
        "## Provenance",
        "",
        f"- data version: `{tags['data_version']}`",
        f"- git commit: `{tags['git_commit']}`",
        f"- params hash: `{tags['params_hash']}`; checkpoint `{tags['checkpoint']}`",
        "- methods: " + ", ".join(f"{key} `{value}`" for key, value in methods.items()),
        "",
        "## Intended use and limits",
        "",
        "- Input: a DataFrame of pixel columns `px_0000`… (0–255) of two-digit canvases of the size it "
        "was trained on, the format `prepare` writes; outputs one column per task.",
        "- Selected on validation against single-task baselines trained with the same backbone and budget; "
        "test metrics are from one held-out split of source digits never seen in training.",
        "- Not validated on other image sizes, other digit layouts or other data; re-run the pipeline "
        "(and its validation) before using it on new data.",
    ]
    return "\n".join(lines) + "\n"

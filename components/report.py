"""What a person reads at the end of a run: MTL against the single-task baselines.

The same numbers render as a rich table for the terminal and as markdown for the Prefect
artifact, the MLflow run and the model card.

Example::

    >>> from components.selection import SelectionReport, TaskResult
    >>> report = SelectionReport("accepted", "epoch_002.pt", "ab12", 2, 0.01, 0.01, 0.0,
    ...                          {"left": TaskResult("accuracy", True, 0.9, 0.909, 0.01, 0.02, True, 0.91, 0.9, 0.34)})
    >>> print(tasks_markdown(report).splitlines()[2])
    | left | accuracy ↑ | 0.9000 | 0.9090 | 0.3400 | +1.00% | pass | 0.9000 | 0.9100 | +1.11% |
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from components.config import InputConfig, Params
from components.io.registry import NotRegistered, Registration
from components.objectives import relative_change
from components.selection import SelectionReport, bracket


def console() -> Console:
    """Rich console for the results; wide enough for the table when output is piped (dvc, CI)."""
    return Console(width=None if sys.stdout.isatty() else 120)


def _rows(selection: SelectionReport) -> list[list[str]]:
    rows = []
    test_changes, beyond = selection.test_changes(), selection.test_regressions()
    for task, entry in selection.tasks.items():
        direction = "↑" if entry.higher_is_better else "↓"
        verdict = "pass" if entry.passed else f"FAIL (< -{entry.tolerance:.0%})"
        rows.append(
            [
                task,
                f"{entry.metric} {direction}",
                f"{entry.baseline:.4f}",
                f"{entry.mtl:.4f}",
                "-" if entry.trivial is None else f"{entry.trivial:.4f}",
                f"{entry.relative_change:+.2%}",
                verdict,
                f"{entry.baseline_test:.4f}",
                f"{entry.test:.4f}",
                f"{test_changes[task]:+.2%}" + (" ⚠" if task in beyond else ""),
            ]
        )
    return rows


HEADERS = [
    "task",
    "metric",
    "baseline val",
    "MTL val",
    "trivial val",  # a constant answer's score: the level a head must beat to have learned anything
    "Δ val",
    "verdict (val)",
    "baseline test",
    "MTL test",
    "Δ test",
]


def _headline(selection: SelectionReport) -> str:
    return (
        f"verdict: {selection.verdict.upper()} · Δm (val) = {selection.delta_m:+.2%} "
        f"(min {selection.min_delta_m:+.2%}) · {selection.reason()} · checkpoint {selection.checkpoint}"
    )


def endings_line(selection: SelectionReport) -> str:
    """The tuning both sides had, and how each compared training ended, in one line."""
    tuned = f"tuned: {selection.tuning_trials} trials each" if selection.tuning_trials else "untuned"
    return f"{tuned} · trainings: " + " · ".join(f"{label} {how}" for label, how in selection.endings.items())


def intervals_line(selection: SelectionReport) -> str | None:
    """Each task's and Δm's bootstrap interval on validation, in one line, if computed."""
    if selection.confidence is None:
        return None
    bounds = [(task, r.interval) for task, r in selection.tasks.items() if r.interval]
    bounds += [("Δm", selection.delta_m_interval)] if selection.delta_m_interval else []
    judged = "the verdict judges their lower ends" if selection.rule == "lower_bound" else "selection.rule: point"
    listed = " · ".join(f"{name}{bracket(interval)}" for name, interval in bounds)
    other = f" · under {selection.other_rule}: {selection.other_rule_verdict}" if selection.other_rule_verdict else ""
    pooled = f" over rows and {len(selection.seeds)} seeds" if selection.seeds else ""
    return f"{selection.confidence:.0%} intervals of Δ val (paired bootstrap{pooled}; {judged}): {listed}{other}"


def _finding_label(selection: SelectionReport) -> str:
    return "note" if selection.accepted else "why"


def diagnosis_markdown(selection: SelectionReport) -> list[str]:
    """The run's findings (``components.diagnosis``) as a markdown section, if any."""
    if not selection.diagnosis:
        return []
    title = {
        "accepted": "## Notes",
        "inconclusive": "## Why it is inconclusive, and what settles it",
    }.get(selection.verdict, "## Why it was rejected, and what to try")
    return ["", title, "", *[f"- {finding}" for finding in selection.diagnosis]]


def test_warning(selection: SelectionReport) -> str | None:
    """The line about tasks beyond tolerance on test, worded for the case: a warning where
    validation passed them (the test split disagrees with the verdict), a note where
    validation failed them too (it agrees)."""
    regressed = selection.test_regressions()
    if not regressed:
        return None
    disagree = selection.test_contradictions()
    agree = [name for name in regressed if name not in disagree]
    also = f" {', '.join(selection.test_warnings(agree))} regresses on validation too." if agree else ""
    if not disagree:
        return (
            f"the test split agrees: beyond tolerance there as on validation: {', '.join(selection.test_warnings())}."
        )
    return (
        f"warning: beyond tolerance on the test split: {', '.join(selection.test_warnings(disagree))}, which "
        "passed on validation; the test split disagrees with the verdict (a small or noisy validation split, "
        f"or a checkpoint chosen by chance): check before promoting.{also}"
    )


def registration_line(registration: Registration | NotRegistered) -> str:
    """What ``register`` did, in one line."""
    if isinstance(registration, NotRegistered):
        return registration.reason
    aliases = ", ".join(registration.aliases) or "none"
    return (
        f"registered {registration.model_name} v{registration.version} · aliases: {aliases} · "
        f"champion {'moved' if registration.champion_moved else 'unchanged'}: {registration.reason}"
    )


def render_summary(
    selection: SelectionReport,
    registration: Registration | NotRegistered | None,
    timings: dict[str, float],
    run_line: str | None = None,
) -> Group:
    """The results table, the verdict and its reason, any test warning, the registration,
    and the stage timings of one pipeline run (``run_line`` names it)."""
    table = Table(title="MTL vs single-task baselines", title_justify="left")
    for header in HEADERS:  # on two lines ("baseline" over "val"): ten columns fit 120 characters
        left = header in ("task", "metric", "verdict (val)")
        table.add_column(header.replace(" ", "\n", 1), justify="left" if left else "right")
    for row in _rows(selection):
        style = "red" if row[6] != "pass" else "yellow" if row[9].endswith("⚠") else None
        table.add_row(*row, style=style)
    colour = {"accepted": "green", "inconclusive": "yellow"}.get(selection.verdict, "red")
    parts: list[Table | Text] = [table, Text(_headline(selection), style=f"bold {colour}")]
    if selection.endings:
        parts.append(Text(endings_line(selection)))
    bounds = intervals_line(selection)
    if bounds:
        parts.append(Text(bounds))
    over_seeds = seeds_table(selection)
    if over_seeds is not None:
        parts.append(over_seeds)
    warning = test_warning(selection)
    if warning:
        parts.append(Text(warning, style="bold yellow"))
    parts += [Text(f"{_finding_label(selection)}: {finding}") for finding in selection.diagnosis]
    if registration:
        parts.append(Text(registration_line(registration)))
    if run_line:
        parts.append(Text(run_line))
    if timings:
        parts.append(
            Text(
                "stage wall time: "
                + " · ".join(f"{s} {t:.1f}s" for s, t in timings.items())
                + f" · total {sum(timings.values()):.1f}s"
            )
        )
    return Group(*parts)


SEED_HEADERS = ["task", "baseline val", "MTL val", "baseline test", "MTL test", "Δ test of the means"]


def seeds_title(selection: SelectionReport) -> str:
    """The caption of the table over seeds."""
    return (
        f"Over {len(selection.seeds)} seeds, mean ± std (the verdict judges the val means; "
        f"seed {selection.seed}, best on validation, is the checkpoint reported above)"
    )


def _seed_rows(selection: SelectionReport) -> list[list[str]]:
    """Per task the mean ± std over seeds of both models on both splits, and the change of
    the test means: how much of a difference is training noise (``training.seeds`` > 1)."""
    spreads = {side: selection.seed_spread(side) for side in ("baseline_val", "mtl_val", "baseline_test", "mtl_test")}
    if not spreads["mtl_test"]:
        return []
    rows = []
    for task, entry in selection.tasks.items():
        cells = [f"{spreads[side][task][0]:.4f} ± {spreads[side][task][1]:.4f}" for side in spreads]
        change = relative_change(
            spreads["mtl_test"][task][0], spreads["baseline_test"][task][0], entry.higher_is_better
        )
        rows.append([task, *cells, f"{change:+.2%}"])
    return rows


def seeds_table(selection: SelectionReport) -> Table | None:
    """:func:`_seed_rows` for the terminal; None with one seed."""
    rows = _seed_rows(selection)
    if not rows:
        return None
    table = Table(title=seeds_title(selection), title_justify="left")
    for header in SEED_HEADERS:
        table.add_column(header, justify="left" if header == "task" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def seeds_markdown(selection: SelectionReport) -> list[str]:
    """:func:`_seed_rows` as a markdown section; nothing with one seed."""
    rows = _seed_rows(selection)
    if not rows:
        return []
    lines = [
        "",
        f"{seeds_title(selection)}:",
        "",
        "| " + " | ".join(SEED_HEADERS) + " |",
        "|" + "---|" * len(SEED_HEADERS),
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def tasks_markdown(selection: SelectionReport) -> str:
    """The per-task table as markdown."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(selection)]
    return "\n".join(lines)


def results_markdown(selection: SelectionReport, registration: Registration | NotRegistered | None = None) -> str:
    """Table, verdict, any test warning and the registration as markdown (the Prefect artifact)."""
    lines = [tasks_markdown(selection), "", f"**{_headline(selection)}**"]
    bounds = intervals_line(selection)
    if bounds:
        lines += ["", bounds]
    lines += seeds_markdown(selection)
    warning = test_warning(selection)
    if warning:
        lines += ["", f"**{warning}**"]
    lines += diagnosis_markdown(selection)
    if registration:
        lines += ["", registration_line(registration)]
    return "\n".join(lines) + "\n"


def versions_table(model_name: str, rows: list[dict[str, Any]]) -> Table:
    """``mtl status``: every registered version, the champion highlighted. The verdict and Δm
    are the policy's, on validation; the metrics are on test, flagged where a task regresses
    beyond tolerance there."""
    tasks = sorted({task for row in rows for task in row["test"]})
    table = Table(
        title=f"{model_name}: registered versions · Δm and verdict on validation, task columns on test",
        title_justify="left",
    )
    for header in ["version", "aliases", "verdict", "Δm (val)", "reason", *tasks, "data"]:
        # the reason and the aliases wrap; the rest stays on one line, the data version cut short
        wraps = header in ("reason", "aliases")
        table.add_column(
            header,
            no_wrap=not wraps,
            overflow="fold" if wraps else "ellipsis",
            min_width=20 if header == "reason" else None,
            max_width=10 if header == "data" else None,
        )
    for row in rows:
        delta = f"{row['delta_m']:+.2%}" if row["delta_m"] is not None else "-"
        metrics = [
            f"{row['test'][t]:.4f}" + (" ⚠" if t in row["test_warnings"] else "") if t in row["test"] else "-"
            for t in tasks
        ]
        style = "bold green" if "champion" in row["aliases"] else None
        table.add_row(
            row["version"],
            ", ".join(row["aliases"]) or "-",
            row["verdict"],
            delta,
            row["reason"],
            *metrics,
            row["data_version"],
            style=style,
        )
    if any(row["test_warnings"] for row in rows):
        table.caption = "⚠ regresses beyond tolerance against its baseline on test"
    return table


INPUT_DESCRIPTIONS = {
    "pixels": "pixel columns `px_0000`… (0–255) of {canvas}×{canvas} greyscale images, or a base64 PNG or JPEG "
    "file of that size per row in column `image_base64`",
    "image": "a base64 PNG or JPEG file per row in column `image_base64` (or, with serving.image_paths, its path "
    "in column {columns}), each resized and centre-cropped to {canvas}×{canvas}",
    "text": "one text column {columns}, tokenised by the tokenizer shipped with the model",
    "tokens": "one column {columns} of word lists (one tag per word comes back)",
    "text_pair": "two text columns {columns} (question, then the context the answer is taken from)",
    "features": "feature columns {columns}: numbers standardised with the training split's statistics, "
    "categories one-hot over the training split's values (an unseen one encodes as all zeros)",
}


def describe_input(spec: InputConfig, canvas_size: int) -> str:
    """What a request must carry for one input, in words."""
    named = spec.all_columns() if spec.kind == "features" else spec.columns
    columns = ", ".join(f"`{column}`" for column in named)
    described = INPUT_DESCRIPTIONS[spec.kind].format(canvas=canvas_size, columns=columns)
    part = spec.feature_part()
    if part is not None and part is not spec:
        beside = ", ".join(f"`{column}`" for column in part.all_columns())
        described += f"; beside it the feature columns {beside} (numbers standardised, categories one-hot)"
    if part is not None and spec.missing != "fail":
        handled = (
            "a row missing one is refused"
            if spec.missing == "drop"
            else f"a missing number is imputed ({spec.missing})"
        )
        described += f"; {handled}"
    return described


def model_card(
    name: str,
    version: str,
    selection: SelectionReport,
    tags: dict[str, str],
    decision_reason: str,
    champion: tuple[str, dict[str, float]] | None,
    methods: dict[str, str],
    params: Params,
) -> str:
    """Markdown model card for one registered version (also its registry description): it
    opens with the verdict and why, then any test warning, so the registry's version list
    shows them first; inputs are described by their kind and answers by their task type."""
    from components.tasks import build_tasks  # imports torch: not for `mtl status`, which shares this module

    lines = [
        f"**Verdict: {selection.verdict}** ({selection.reason()}) · champion: {decision_reason}",
    ]
    warning = test_warning(selection)
    if warning:
        lines += ["", f"**⚠ {warning}**"]
    lines += [
        "",
        f"# {name} v{version}",
        "",
        f"Δm (val) = {selection.delta_m:+.2%} (min {selection.min_delta_m:+.2%}); checkpoint "
        f"`{selection.checkpoint}` (epoch {selection.epoch}).",
        "",
        "## Tasks and metrics",
        "",
        tasks_markdown(selection),
        *(["", bounds] if (bounds := intervals_line(selection)) else []),
        *seeds_markdown(selection),
        *diagnosis_markdown(selection),
    ]
    if champion is not None:
        champion_version, champion_test = champion
        lines += [
            "",
            f"Current champion before this version: v{champion_version}, test "
            + ", ".join(f"{task} {value:.4f}" for task, value in champion_test.items()),
        ]
    inputs = params.data.inputs()
    if params.data.datasets:
        request = [
            f"- Input: a DataFrame with a `dataset` column ({', '.join(f'`{d}`' for d in inputs)}); "
            "each row carries its dataset's input, and each task answers on its own dataset's rows:"
        ]
        request += [
            f"  - `{dataset}`: {describe_input(spec, params.data.canvas_size)}" for dataset, spec in inputs.items()
        ]
    else:
        request = [f"- Input: a DataFrame of {describe_input(params.data.input, params.data.image_side())}."]
    answers = [
        f"  - `{task_name}` ({task.type_name}, {task.metric_name}): {task.describe_answer()}"
        for task_name, task in build_tasks(params.tasks).items()
    ]
    lines += [
        "",
        "## Provenance",
        "",
        f"- data: `{params.data.source}`, version `{tags['data_version']}`",
        f"- git commit: `{tags['git_commit']}`",
        f"- params hash: `{tags['params_hash']}`; checkpoint `{tags['checkpoint']}`",
        "- methods: " + ", ".join(f"{key} `{value}`" for key, value in methods.items()),
        "",
        "## Intended use and limits",
        "",
        *request,
        "- Output: one column per task (ask for fewer with the `tasks` parameter):",
        *answers,
        "- Selected on validation against single-task baselines trained with the same backbone and budget; "
        "test metrics are from the held-out test split of the same data version.",
        "- Not validated on data from another source or distribution; re-run the pipeline "
        "(and its validation) before using it on new data.",
    ]
    return "\n".join(lines) + "\n"


def registered_model_description(params: Params) -> str:
    """What the registered model is, whichever version: the registry's model page shows it."""
    tasks = ", ".join(f"`{name}` ({config.type})" for name, config in params.tasks.items())
    return (
        f"One multi-task network: a shared `{params.model.backbone}` backbone with a light head per task "
        f"({tasks}), trained on `{params.data.source}` data and registered by the pipeline only after "
        "it is compared with single-task baselines trained on the same data.\n\n"
        "Aliases: `champion` is the version to serve; it moves only to a version accepted by the "
        "acceptance policy that does not regress against the previous champion. `challenger` is the "
        "newest version, `previous-champion` the one `mtl rollback` returns to. Each version's "
        "description is its model card, opening with the verdict and why.\n"
    )


def added_task_table(added: dict[str, Any]) -> Group:
    """What ``mtl add-task`` did (``reports/add_task.json``): the new task against its
    baseline, the old tasks as the champion had them, the verdict, how both sides' trainings
    ended, and the aliases."""
    table = Table(title=f"{added['task']} added to v{added['base_version']} as v{added['version']}")
    for column in ("task", "metric", "baseline\nval", "val", "Δ val", "baseline\ntest", "test"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    change = added["relative_change"]
    table.add_row(
        f"{added['task']} (new)", added["metric"], f"{added['baseline_val']:.4f}", f"{added['head_val']:.4f}",
        f"{change:+.2%}{bracket(added['interval'])}", f"{added['baseline_test']:.4f}", f"{added['head_test']:.4f}",
    )  # fmt: skip
    for task, value in added["old_tasks_val"].items():
        table.add_row(task, "", "", f"{value:.4f}", "bit-identical", "", "")
    moved = "champion moved" if added["champion_moved"] else "champion unchanged"
    return Group(
        table,
        Text(f"verdict: {added['verdict'].upper()} · {added['reason']}"),
        Text("trainings: " + " · ".join(f"{side} {how}" for side, how in added["endings"].items())),
        Text(f"registered v{added['version']} · {moved}: {added['promotion']}"),
    )

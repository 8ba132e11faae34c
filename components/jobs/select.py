"""Stage ``select``: every MTL checkpoint scored on **validation** against the baselines, one
chosen under the acceptance policy (``components.selection``), its **test** metrics
reported in ``reports/selection.json`` with each task's trivial level and what the run's
measurements suggest trying (``components.diagnosis``). Every compared training's ending
(``reports/baselines.json``, ``reports/train_mtl.json``) is checked first: a verdict on a
training that ended while still improving is ``inconclusive``.

    $ mtl select
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from components.config import Params
from components.diagnosis import diagnose
from components.jobs import evidence as measured
from components.jobs.layout import METRICS_REPORT, SELECTION_REPORT, timed, write_json
from components.selection import Choice, SelectionReport, choose_checkpoint, judge_convergence, other_rule


@timed("select")
def run(params: Params, root: Path) -> SelectionReport:
    """Chooses the checkpoint, writes and returns the report.

    With ``training.seeds`` > 1 an epoch is judged on the mean over seeds of its checkpoints'
    validation metrics against the baselines' seed means, with intervals pooled over seeds
    (``components.bootstrap.pooled_intervals``); of the chosen epoch's checkpoints, the seed
    that scores best on validation is the one reported on test and registered."""
    found = measured.gather(params, root)
    rules, unconverged = params.selection, found.unconverged()

    def verdict(rule: str) -> Choice:
        chosen = choose_checkpoint(found.candidates, found.baseline_val, found.goals, rules.min_delta_m, rule)
        return judge_convergence(chosen, unconverged, rules.unconverged)

    choice, other = verdict(rules.rule), verdict(other_rule(rules.rule))
    epoch = choice.chosen.epoch
    tests, seed = found.test_metrics(epoch), found.best_seed(epoch)
    report = SelectionReport.build(
        choice,
        found.chosen(epoch)[seed]["sha256"],
        found.goals,
        tests[seed],
        found.baseline_test,
        rules.min_delta_m,
        found.trivial_levels(),
        rules.rule,
        rules.confidence if found.bootstrapped else None,
    )
    report = replace(
        report,
        checkpoint=found.checkpoint_path(epoch, seed),
        diagnosis=findings(report, found, params),
        other_rule_verdict=other.verdict if found.bootstrapped else None,
        seed=seed,
        seeds=found.seed_results(epoch, tests),
        unconverged=unconverged,
        endings={label: ending.describe() for label, ending in found.endings.items()},
        max_epochs=params.training.max_epochs,
        tuning_trials=params.tuning.trials,
    )
    if broken := report.non_finite():  # a NaN model is never reported as a candidate, let alone registered
        raise measured.NonFiniteMetrics(
            f"select: {report.checkpoint} has non-finite metrics: {', '.join(broken)}; the training or "
            "a baseline diverged: lower training.lr and run again"
        )
    write_json(root / SELECTION_REPORT, report.to_dict())
    write_json(root / METRICS_REPORT, report.flat_metrics())
    measured.write_task_plots(root, list(found.tasks))
    print_verdict(report, len(found.seeds))
    return report


def findings(report: SelectionReport, found: measured.Evidence, params: Params) -> list[str]:
    """What the run's measurements suggest trying (``components.diagnosis``)."""
    rules = params.selection
    low = report.delta_m_interval[0] if rules.rule == "lower_bound" and report.delta_m_interval else None
    first_losses, conflict, cosine = found.gradient_agreement()
    return diagnose(
        report.tasks,
        first_losses,
        conflict,
        cosine,
        (report.delta_m, low),
        rules.min_delta_m,
        found.unconverged(),
        params.training.max_epochs,
    )


def print_verdict(report: SelectionReport, seeds: int) -> None:
    """The verdict, its checkpoint and Δm, and each finding, one line each."""
    over = f", seed {report.seed} of {seeds}" if seeds > 1 else ""
    print(f"select: {report.verdict}, {report.checkpoint}{over} (Δm {report.delta_m:+.2%})")
    if report.verdict == "inconclusive":
        print(f"  inconclusive: {report.reason()}")
    for finding in report.diagnosis:
        print(f"  {'why' if not report.accepted else 'note'}: {finding}")

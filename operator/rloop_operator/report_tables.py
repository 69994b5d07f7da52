"""The tables `rloop report` prints. Pure: a run's summary in, rich tables out.

A row is one evaluated policy: the base policy (iteration 0) when the run evaluated it,
then one per iteration, each with the RL steps the run had taken behind it. Metrics are
named as in the run's status: `<set>/avg@<n>` and `<set>/pass@<k>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.table import Table


@dataclass(frozen=True)
class PolicyRow:
    label: str
    iteration: int
    rl_steps: int
    expert_samples: int | None
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class RunSummary:
    """What the store holds about one run: its evaluated policies in training order."""

    name: str
    prefix: str
    rows: tuple[PolicyRow, ...]
    forgetting_rates: Mapping[str, float | None] = field(default_factory=dict)
    pictures: tuple[str, ...] = ()


def _metric_order(name: str) -> tuple[str, int, int]:
    """`heldout/avg@8` before `heldout/pass@1` before `heldout/pass@8`, sets in order."""
    set_name, _, figure = name.rpartition("/")
    match = re.fullmatch(r"(avg|pass)@(\d+)", figure)
    if match is None:
        return (set_name, 2, 0)
    return (set_name, 0 if match[1] == "avg" else 1, int(match[2]))


def metric_names(rows: Sequence[PolicyRow]) -> list[str]:
    return sorted({name for row in rows for name in row.metrics}, key=_metric_order)


def _cell(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def iteration_table(summary: RunSummary) -> Table:
    """One row per evaluated policy: iteration, RL steps, expert samples, every metric."""
    names = metric_names(summary.rows)
    table = Table(title=f"{summary.name}  ({summary.prefix})")
    for column in ("policy", "iteration", "RL steps", "expert samples", *names):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in summary.rows:
        table.add_row(
            row.label,
            str(row.iteration),
            str(row.rl_steps),
            _cell(row.expert_samples),
            *(_cell(row.metrics.get(name)) for name in names),
        )
    return table


def best_row(rows: Sequence[PolicyRow], metric: str) -> PolicyRow | None:
    """The row with the highest `metric` (the earliest among equals); None if no row has it."""
    scored = [row for row in rows if metric in row.metrics]
    return max(scored, key=lambda row: row.metrics[metric], default=None)


def matched_rows(
    first: Sequence[PolicyRow], second: Sequence[PolicyRow]
) -> list[tuple[PolicyRow, PolicyRow]]:
    """Pairs of rows at equal RL steps (the last of each run's rows at that step)."""
    by_steps = {row.rl_steps: row for row in second}
    pairs = {
        row.rl_steps: (row, by_steps[row.rl_steps]) for row in first if row.rl_steps in by_steps
    }
    return [pairs[steps] for steps in sorted(pairs)]


def comparison_table(first: RunSummary, second: RunSummary) -> Table:
    """The paper's Table 1: both runs' metrics at equal RL steps, and their difference."""
    pairs = matched_rows(first.rows, second.rows)
    names = metric_names([row for pair in pairs for row in pair])
    table = Table(title=f"{first.name} vs {second.name} at equal RL steps")
    for column in ("RL steps", "run", "policy", *names):
        table.add_column(column, justify="left" if column in ("run", "policy") else "right")
    for ours, theirs in pairs:
        table.add_row(
            str(ours.rl_steps), first.name, ours.label, *(_cell(ours.metrics.get(n)) for n in names)
        )
        table.add_row("", second.name, theirs.label, *(_cell(theirs.metrics.get(n)) for n in names))
        differences = [
            ours.metrics[n] - theirs.metrics[n]
            if n in ours.metrics and n in theirs.metrics
            else None
            for n in names
        ]
        table.add_row("", "difference", "", *(_signed(d) for d in differences), end_section=True)
    return table


def comparison_verdict(first: RunSummary, second: RunSummary) -> str | None:
    """One line that says what the comparison showed at the last equal RL step, computed
    from the numbers: the first set's largest pass@k, then its avg@n; None when the runs
    share no evaluated RL step or metric."""
    pairs = matched_rows(first.rows, second.rows)
    if not pairs:
        return None
    ours, theirs = pairs[-1]
    shared = [name for name in metric_names([ours, theirs])
              if name in ours.metrics and name in theirs.metrics]  # fmt: skip
    if not shared:
        return None
    set_name = shared[0].rpartition("/")[0]
    figures = [name for name in shared if name.rpartition("/")[0] == set_name]
    passes = [name for name in figures if "/pass@" in name]
    headline = passes[-1] if passes else figures[0]
    averages = [name for name in figures if "/avg@" in name and name != headline]
    difference = ours.metrics[headline] - theirs.metrics[headline]
    standing = "ahead of" if difference > 0 else "behind" if difference < 0 else "level with"
    versus = "; ".join(_versus(name, ours, theirs) for name in (headline, *averages))
    return (
        f"After {ours.rl_steps} RL steps {first.name} is {standing} {second.name} on "
        f"{headline} in this run: {versus} ({first.name} vs {second.name})"
    )


def _versus(name: str, ours: PolicyRow, theirs: PolicyRow) -> str:
    value, other = ours.metrics[name], theirs.metrics[name]
    return f"{name} {value:.3f} vs {other:.3f} ({value - other:+.3f})"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def forgetting_table(first: RunSummary, second: RunSummary) -> Table:
    """Each validation set's forgetting rate in both runs (lower forgets less)."""
    table = Table(title="forgetting rate: mean share of problems a later policy loses")
    for column in ("validation set", first.name, second.name, "difference"):
        table.add_column(column, justify="left" if column == "validation set" else "right")
    for set_name in sorted({*first.forgetting_rates, *second.forgetting_rates}):
        ours = first.forgetting_rates.get(set_name)
        theirs = second.forgetting_rates.get(set_name)
        difference = None if ours is None or theirs is None else ours - theirs
        table.add_row(set_name, _cell(ours), _cell(theirs), _signed(difference))
    return table

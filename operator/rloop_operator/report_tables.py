"""The per-run tables `rloop report` prints. Pure: a run's summary in, rich tables out
(comparison_tables.py has those of --compare).

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


def set_names(rows: Sequence[PolicyRow]) -> list[str]:
    return sorted({name.rpartition("/")[0] for row in rows for name in row.metrics})


def iteration_tables(summary: RunSummary) -> list[Table]:
    """One table a validation set, one row per evaluated policy: iteration, RL steps,
    expert samples and the set's figures (pass@1 left out: it is avg@n)."""
    tables = []
    for set_name in set_names(summary.rows):
        names = [n for n in metric_names(summary.rows)
                 if n.rpartition("/")[0] == set_name and not n.endswith("/pass@1")]  # fmt: skip
        table = Table(title=f"{summary.name}: {set_name}", caption=summary.prefix)
        for column in (
            "policy",
            "iter",
            "RL steps",
            "expert",
            *(n.rpartition("/")[2] for n in names),
        ):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in summary.rows:
            table.add_row(
                row.label,
                str(row.iteration),
                str(row.rl_steps),
                _cell(row.expert_samples),
                *(_cell(row.metrics.get(name)) for name in names),
            )
        tables.append(table)
    return tables


def best_row(rows: Sequence[PolicyRow], metric: str) -> PolicyRow | None:
    """The row with the highest `metric` (the earliest among equals); None if no row has it."""
    scored = [row for row in rows if metric in row.metrics]
    return max(scored, key=lambda row: row.metrics[metric], default=None)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def forgetting_table(
    ours: Sequence[RunSummary], theirs: Sequence[RunSummary], names: tuple[str, str]
) -> Table:
    """Each validation set's forgetting rate in both arms, mean over their runs (lower
    forgets less)."""
    table = Table(title="forgetting rate: mean share of problems a later policy loses")
    for column in ("validation set", *names, "difference"):
        table.add_column(column, justify="left" if column == "validation set" else "right")
    for set_name in sorted({k for s in (*ours, *theirs) for k in s.forgetting_rates}):
        a = _mean([s.forgetting_rates.get(set_name) for s in ours])
        b = _mean([s.forgetting_rates.get(set_name) for s in theirs])
        difference = None if a is None or b is None else f"{a - b:+.3f}"
        table.add_row(set_name, _cell(a), _cell(b), difference or "-")
    return table

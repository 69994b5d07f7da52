"""The per-run tables of `rloop report`: rows per evaluated policy, the best one, and the
forgetting rates of two arms."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rloop_operator.report_tables import (
    PolicyRow,
    RunSummary,
    best_row,
    forgetting_table,
    iteration_tables,
    metric_names,
)

RLOOP = RunSummary(
    "rloop",
    "s3://b/ns/rloop/u1",
    (
        PolicyRow("base", 0, 0, None, {"h/avg@8": 0.10, "h/pass@8": 0.50}),
        PolicyRow("iter 1", 1, 4, 12, {"h/avg@8": 0.30, "h/pass@8": 0.70}),
        PolicyRow("iter 2", 2, 8, 9, {"h/avg@8": 0.25, "h/pass@8": 0.75}),
    ),
    {"h": 0.05},
)
VANILLA = RunSummary(
    "vanilla",
    "s3://b/ns/vanilla/u2",
    (
        PolicyRow("iter 1", 1, 8, None, {"h/avg@8": 0.20, "h/pass@8": 0.40, "h/pass@1": 0.2}),
        PolicyRow("iter 2", 2, 12, None, {"h/avg@8": 0.22, "h/pass@8": 0.41}),
    ),
    {"h": 0.125},
)


def cells(table: Table) -> list[list[str]]:
    """The table's rows as printed text, one list per row."""
    columns = [[str(cell) for cell in column.cells] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def test_metrics_are_ordered_avg_first_then_pass_at_growing_k() -> None:
    rows = [PolicyRow("a", 0, 0, None, {"t/pass@16": 1, "h/pass@2": 1, "h/avg@4": 1, "t/avg@4": 1})]

    assert metric_names(rows) == ["h/avg@4", "h/pass@2", "t/avg@4", "t/pass@16"]


def test_the_iteration_tables_have_a_row_per_policy_base_first_one_table_a_set() -> None:
    two_sets = RunSummary(
        "r", "s3://b/r", (PolicyRow("base", 0, 0, None, {"a/avg@4": 0.5, "b/avg@4": 0.25}),)
    )

    (table,) = iteration_tables(RLOOP)

    assert table.title == "rloop: h"
    assert [column.header for column in table.columns] == [
        "policy", "iter", "RL steps", "expert", "avg@8", "pass@8",
    ]  # fmt: skip
    assert cells(table) == [
        ["base", "0", "0", "-", "0.100", "0.500"],
        ["iter 1", "1", "4", "12", "0.300", "0.700"],
        ["iter 2", "2", "8", "9", "0.250", "0.750"],
    ]
    assert [cells(t) for t in iteration_tables(two_sets)] == [
        [["base", "0", "0", "-", "0.500"]],
        [["base", "0", "0", "-", "0.250"]],
    ]
    # pass@1 is avg@n: not shown twice
    assert [c.header for c in iteration_tables(VANILLA)[0].columns][4:] == ["avg@8", "pass@8"]


def test_the_best_policy_maximises_the_metric_and_the_earliest_wins_ties() -> None:
    assert best_row(RLOOP.rows, "h/avg@8") == RLOOP.rows[1]
    assert best_row(RLOOP.rows, "h/pass@8") == RLOOP.rows[2]
    tied = [PolicyRow("a", 1, 4, None, {"m": 0.5}), PolicyRow("b", 2, 8, None, {"m": 0.5})]
    assert best_row(tied, "m") == tied[0]
    assert best_row(RLOOP.rows, "other/avg@8") is None


def test_forgetting_rates_of_both_arms_mean_over_their_runs_and_the_difference() -> None:
    other = RunSummary("rloop-2", "s3://b/ns/rloop/u3", RLOOP.rows, {"h": 0.15})

    table = forgetting_table([RLOOP, other], [VANILLA, VANILLA], ("RLoop", "vanilla"))

    assert cells(table) == [["h", "0.100", "0.125", "-0.025"]]
    assert [c.header for c in table.columns] == ["validation set", "RLoop", "vanilla", "difference"]


def test_the_iteration_table_fits_eighty_columns_with_whole_headers() -> None:
    console = Console(file=io.StringIO(), width=80)

    for table in iteration_tables(RLOOP):
        console.print(table)

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "rloop: h" in text and "s3://b/ns/rloop/u1" in text
    assert "…" not in text and max(map(len, text.splitlines())) <= 80

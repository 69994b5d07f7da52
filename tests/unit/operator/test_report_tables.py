"""The tables of `rloop report`: rows per evaluated policy, the best one, two runs side by
side at equal RL steps."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rloop_operator.report_tables import (
    PolicyRow,
    RunSummary,
    best_row,
    comparison_table,
    comparison_verdict,
    forgetting_table,
    iteration_table,
    matched_rows,
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


def test_the_iteration_table_has_a_row_per_policy_base_first() -> None:
    table = iteration_table(RLOOP)

    assert [column.header for column in table.columns] == [
        "policy", "iteration", "RL steps", "expert samples", "h/avg@8", "h/pass@8",
    ]  # fmt: skip
    assert cells(table) == [
        ["base", "0", "0", "-", "0.100", "0.500"],
        ["iter 1", "1", "4", "12", "0.300", "0.700"],
        ["iter 2", "2", "8", "9", "0.250", "0.750"],
    ]


def test_the_best_policy_maximises_the_metric_and_the_earliest_wins_ties() -> None:
    assert best_row(RLOOP.rows, "h/avg@8") == RLOOP.rows[1]
    assert best_row(RLOOP.rows, "h/pass@8") == RLOOP.rows[2]
    tied = [PolicyRow("a", 1, 4, None, {"m": 0.5}), PolicyRow("b", 2, 8, None, {"m": 0.5})]
    assert best_row(tied, "m") == tied[0]
    assert best_row(RLOOP.rows, "other/avg@8") is None


def test_runs_are_compared_only_at_rl_steps_both_evaluated() -> None:
    assert [(a.label, b.label) for a, b in matched_rows(RLOOP.rows, VANILLA.rows)] == [
        ("iter 2", "iter 1")
    ]

    table = comparison_table(RLOOP, VANILLA)

    assert cells(table) == [
        ["8", "rloop", "iter 2", "0.250", "-", "0.750"],
        ["", "vanilla", "iter 1", "0.200", "0.200", "0.400"],
        ["", "difference", "", "+0.050", "-", "+0.350"],
    ]


def test_forgetting_rates_of_both_runs_and_their_difference() -> None:
    assert cells(forgetting_table(RLOOP, VANILLA)) == [["h", "0.050", "0.125", "-0.075"]]


def test_tables_render_with_their_titles() -> None:
    console = Console(file=io.StringIO(), width=200)

    console.print(iteration_table(RLOOP))

    assert "rloop  (s3://b/ns/rloop/u1)" in console.file.getvalue()  # type: ignore[attr-defined]


def test_the_verdict_reads_the_last_equal_step_largest_pass_at_k_first() -> None:
    # At 8 RL steps: rloop's iter 2 (avg 0.25, pass@8 0.75) against vanilla's iter 1.
    assert comparison_verdict(RLOOP, VANILLA) == (
        "After 8 RL steps rloop is ahead of vanilla on h/pass@8 in this run: "
        "h/pass@8 0.750 vs 0.400 (+0.350); h/avg@8 0.250 vs 0.200 (+0.050) (rloop vs vanilla)"
    )


def test_the_verdict_says_behind_when_the_numbers_say_so() -> None:
    verdict = comparison_verdict(VANILLA, RLOOP)
    assert verdict is not None
    assert verdict.startswith("After 8 RL steps vanilla is behind rloop on h/pass@8")


def test_runs_without_an_equal_step_get_no_verdict() -> None:
    later = RunSummary("later", "s3://b/l", (PolicyRow("iter 1", 1, 100, None, {"h/avg@8": 1.0}),))
    assert comparison_verdict(RLOOP, later) is None

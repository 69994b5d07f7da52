"""The tables and pictures of `rloop report --compare`, on two hand-made arms: whole
headers and cells at 80 columns, the numbers of the comparison."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rloop_operator.comparison_plots import write_pictures
from rloop_operator.comparison_tables import (
    along_steps_table,
    diversity_table,
    forgetting_difference_table,
    table_one,
)
from rloop_operator.run_comparison import along_steps, differential_forgetting
from rloop_operator.run_comparison import table_one as table_one_comparisons

from tests.unit.operator.two_arms import ARMS, OURS, THEIRS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cells(table: Table) -> list[list[str]]:
    columns = [[str(cell) for cell in column.cells] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def rendered(*tables: Table) -> str:
    console = Console(file=io.StringIO(), width=80)
    for table in tables:
        console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def test_table_one_has_base_both_arms_the_difference_and_its_interval() -> None:
    comparisons = table_one_comparisons(ARMS, "h")

    table = table_one(ARMS, "h", comparisons)

    avg = cells(table)[0]
    assert avg[:4] == [
        "avg@4",
        "0.500",
        f"{comparisons[0].theirs:.3f}",
        f"{comparisons[0].ours:.3f}",
    ]
    d = comparisons[0].difference
    assert avg[4:] == [f"{d.estimate:+.3f}", f"[{d.low:+.3f}, {d.high:+.3f}]"]
    assert table.title == "h after 8 RL steps (Table 1; mean of 2 seeds)"


def test_the_forgetting_difference_shows_later_policies_only() -> None:
    steps, difference = differential_forgetting(OURS, THEIRS, "h")

    table = forgetting_difference_table(ARMS, "h", steps, difference)

    assert cells(table) == [
        ["0", "", "+0.125", "+0.500"],
        ["4", "", "", "+0.125"],
        ["8", "", "", ""],
    ]


def test_the_diversity_table_has_every_step_either_arm_evaluated() -> None:
    assert cells(diversity_table(ARMS, "h")) == [
        ["0", "0.300", "0.300", "+0.000"],
        ["4", "0.225", "0.375", "-0.150"],
        ["6", "-", "0.500", "-"],
        ["8", "0.200", "0.475", "-0.275"],
    ]


def test_every_comparison_table_reads_whole_at_eighty_columns() -> None:
    steps, difference = differential_forgetting(OURS, THEIRS, "h")

    text = rendered(
        table_one(ARMS, "h", table_one_comparisons(ARMS, "h")),
        along_steps_table(ARMS, "h", along_steps(ARMS, "h")),
        forgetting_difference_table(ARMS, "h", steps, difference),
        diversity_table(ARMS, "h"),
    )

    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    for header in ("figure", "base", "vanilla", "RLoop", "difference", "95% interval", "avg@4"):
        assert header in text


def test_the_comparison_pictures_are_pngs(tmp_path: Path) -> None:
    forgetting = {"h": differential_forgetting(OURS, THEIRS, "h")}

    paths = write_pictures(tmp_path, ARMS, {"h": along_steps(ARMS, "h")}, forgetting)

    assert [p.name for p in paths] == [
        "accuracy.png", "forgetting-difference.png", "diversity.png", "entropy-gradnorm.png",
    ]  # fmt: skip
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)

"""The tables of `rloop report --compare`: two arms over paired seeds. Pure: comparisons
in, rich tables out. Each table is narrow enough for an 80-column terminal: one table a
validation set, figures as rows, short headers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.table import Table

from rloop_operator.run_comparison import (
    Arms,
    FigureComparison,
    FloatMatrix,
    base_figure,
    own_similarity,
)

INTERVAL = "95% interval"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _interval(comparison: FigureComparison) -> str:
    d = comparison.difference
    return f"[{d.low:+.3f}, {d.high:+.3f}]"


def _seeds(arms: Arms) -> str:
    count = len(arms.ours)
    return f"{count} seed{'s' if count != 1 else ''}"


def table_one(arms: Arms, set_name: str, comparisons: Sequence[FigureComparison]) -> Table:
    """Table 1 at the last equal RL step: base, B, A, A - B and its interval per figure."""
    steps = comparisons[0].ours_steps
    table = Table(
        title=f"{set_name} after {steps} RL steps (Table 1; mean of {_seeds(arms)})",
        caption=f"{arms.ours_name} - {arms.theirs_name}: paired bootstrap over seeds and problems",
    )
    for column in ("figure", "base", arms.theirs_name, arms.ours_name, "difference", INTERVAL):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for c in comparisons:
        base = base_figure(arms.runs, set_name, c.figure)
        table.add_row(
            c.figure,
            "-" if base is None else f"{base:.3f}",
            f"{c.theirs:.3f}",
            f"{c.ours:.3f}",
            _signed(c.difference.estimate),
            _interval(c),
        )
    return table


def along_steps_table(arms: Arms, set_name: str, comparisons: Sequence[FigureComparison]) -> Table:
    """Both arms at every equal RL step, with the difference's interval (Fig. 4's points)."""
    table = Table(title=f"{set_name} at equal RL steps (mean of {_seeds(arms)})")
    for column in ("RL steps", "figure", arms.ours_name, arms.theirs_name, "difference", INTERVAL):
        table.add_column(column, justify="left" if column == "figure" else "right")
    previous = None
    for c in comparisons:
        step = "" if c.ours_steps == previous else str(c.ours_steps)
        previous = c.ours_steps
        table.add_row(
            step, c.figure, f"{c.ours:.3f}", f"{c.theirs:.3f}", _signed(c.difference.estimate),
            _interval(c),
        )  # fmt: skip
    return table


def forgetting_difference_table(
    arms: Arms, set_name: str, steps: Sequence[int], difference: FloatMatrix
) -> Table:
    """Fig. 5a as numbers: row i, column j is the share of problems B's policy at step j
    lost of those its policy at step i solved, minus the same for A."""
    table = Table(
        title=f"{set_name}: forgetting of {arms.theirs_name} minus {arms.ours_name} "
        f"(Fig. 5a; mean of {_seeds(arms)})",
        caption=f"row: policy at RL step i; column: later policy at step j; "
        f"+ = {arms.ours_name} forgets less",
    )
    table.add_column("i \\ j", justify="right")
    for step in steps:
        table.add_column(str(step), justify="right")
    for i, step in enumerate(steps):
        cells = [
            "" if j <= i or np.isnan(v) else _signed(float(v)) for j, v in enumerate(difference[i])
        ]
        table.add_row(str(step), *cells)
    return table


def diversity_table(arms: Arms, set_name: str) -> Table:
    """Fig. 5b as numbers: each arm's own similarity at every evaluated RL step."""
    ours, theirs = own_similarity(arms.ours, set_name), own_similarity(arms.theirs, set_name)
    table = Table(
        title=f"{set_name}: similarity of a policy's own solutions (Fig. 5b; mean of "
        f"{_seeds(arms)})",
        caption="bigram Jaccard of two distinct samples of a problem (Appendix A); "
        "lower = more diverse",
    )
    for column in ("RL steps", arms.ours_name, arms.theirs_name, "difference"):
        table.add_column(column, justify="right")
    for step in sorted({*ours, *theirs}):
        a = float(np.mean(ours[step])) if step in ours else None
        b = float(np.mean(theirs[step])) if step in theirs else None
        table.add_row(
            str(step),
            "-" if a is None else f"{a:.3f}",
            "-" if b is None else f"{b:.3f}",
            "-" if a is None or b is None else _signed(a - b),
        )
    return table

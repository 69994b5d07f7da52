"""The replication's results as markdown for bench/RESULTS.md, computed by the same
functions as `rloop report --compare` (rloop_operator.run_comparison)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rloop_operator.run_comparison import (
    Arms,
    FigureComparison,
    RunAnalysis,
    base_figure,
    differential_forgetting,
    final_comparisons,
    own_similarity,
    shared_sets,
)


def _interval(c: FigureComparison) -> str:
    d = c.difference
    return f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def table_one_markdown(arms: Arms, first: dict[str, list[FigureComparison]]) -> list[str]:
    """Table 1: per set and figure, base, B, A, and A - B with its 95% interval."""
    header = ["set", "figure", "base", arms.theirs_name, arms.ours_name,
              f"{arms.ours_name} - {arms.theirs_name} [95% interval]"]  # fmt: skip
    rows = []
    for set_name, comparisons in first.items():
        for c in comparisons:
            base = base_figure(arms.runs, set_name, c.figure)
            rows.append([set_name, c.figure, "-" if base is None else f"{base:.3f}",
                         f"{c.theirs:.3f}", f"{c.ours:.3f}", _interval(c)])  # fmt: skip
    return _table(header, rows)


def along_markdown(arms: Arms, along: dict[str, list[FigureComparison]]) -> list[str]:
    header = ["RL steps", "set", "figure", arms.ours_name, arms.theirs_name, "difference [95%]"]
    rows = [
        [str(c.ours_steps), set_name, c.figure, f"{c.ours:.3f}", f"{c.theirs:.3f}", _interval(c)]
        for set_name, comparisons in along.items()
        for c in comparisons
    ]
    return _table(header, rows)


def ablation_markdown(ablations: Sequence[tuple[str, Arms]]) -> list[str]:
    """Per ablation: its last policy against RLoop's, headline figures, RLoop minus it."""
    header = ["ablation", "its RL steps", "set", "figure", "ablation", "RLoop",
              "RLoop - ablation [95%]"]  # fmt: skip
    rows = []
    for summary, arms in ablations:
        for c in final_comparisons(arms):
            rows.append([summary, str(c.theirs_steps), c.set_name, c.figure, f"{c.theirs:.3f}",
                         f"{c.ours:.3f}", _interval(c)])  # fmt: skip
    return _table(header, rows)


def forgetting_markdown(arms: Arms) -> list[str]:
    """Fig. 5a per set: forgetting of B minus A between aligned policies, mean over seeds."""
    lines = []
    for set_name in shared_sets(arms.runs):
        steps, difference = differential_forgetting(arms.ours, arms.theirs, set_name)
        title = (
            f"{set_name}: forgetting of {arms.theirs_name} minus {arms.ours_name} (row: earlier "
            f"policy, column: later, by RL steps; + = {arms.ours_name} forgets less)"
        )
        rows = []
        for i, step in enumerate(steps):
            later = enumerate(difference[i])
            rows.append([str(step), *("" if j <= i else f"{v:+.3f}" for j, v in later)])
        lines += ["", title, "", *_table(["i \\ j", *map(str, steps)], rows)]
    return lines


def diversity_markdown(runs_by_arm: Sequence[tuple[str, Sequence[RunAnalysis]]]) -> list[str]:
    """Each arm's own similarity (mean over its runs) per evaluated RL step, per set."""
    lines = []
    for set_name in shared_sets([run for _, runs in runs_by_arm for run in runs]):
        points = {name: own_similarity(runs, set_name) for name, runs in runs_by_arm}
        steps = sorted({step for by_step in points.values() for step in by_step})
        rows = [
            [name, *(f"{np.mean(by_step[s]):.3f}" if s in by_step else "-" for s in steps)]
            for name, by_step in points.items()
        ]
        lines += ["", f"{set_name}: own similarity at each evaluated RL step (Appendix A "
                  "diagonal; lower = more diverse)", ""]  # fmt: skip
        lines += _table(["arm \\ RL steps", *map(str, steps)], rows)
    return lines


def half_width_line(first: dict[str, list[FigureComparison]], figure: str) -> str:
    widths = {
        set_name: c.difference.half_width
        for set_name, comparisons in first.items()
        for c in comparisons
        if c.figure == figure
    }
    parts = ", ".join(f"{s} {w:.3f}" for s, w in widths.items())
    return f"Half-width of the 95% interval of {figure} at the last step: {parts}."

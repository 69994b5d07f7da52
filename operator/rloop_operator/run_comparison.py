"""Two arms compared as the paper compares RLoop and vanilla RL, over paired seeds. Pure.

An arm is one run per seed (RLoop, or vanilla DAPO, or an ablation), the i-th run of
one arm paired with the i-th of the other. Everything is read from each run's
analysis.json (trainer's run_analysis.py), parsed once here:

- Table 1: each held-out figure (avg@n, pass@k) of both arms at one RL step, and A
  minus B with a paired bootstrap 95% interval (paired_bootstrap.py);
- Fig. 5a: the differential forgetting matrix, forgetting of B minus forgetting of A
  between the policies both evaluated at the same RL steps ("aligned windows"); mean
  over the seed pairs; positive where A forgets less;
- Fig. 5b: each policy's own similarity (the diagonal of Appendix A's matrix: lower is
  more diverse), per evaluated RL step;
- Fig. 5c, 6: token entropy and gradient norm per RL step, mean over an arm's runs;
- the sentence: where the intervals put A against B at the last equal RL step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rloop_operator.paired_bootstrap import Interval, paired_interval

FloatMatrix = npt.NDArray[np.float64]
Curve = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class SetAnalysis:
    """One validation set of one run: its policies in training order, problem by problem."""

    policies: tuple[str, ...]
    problem_ids: tuple[str, ...]
    forgetting: FloatMatrix  # (policies, policies)
    similarity: FloatMatrix  # (policies, policies)
    per_problem: Mapping[str, FloatMatrix]  # figure (avg@n, pass@k) -> (policies, problems)


@dataclass(frozen=True)
class RunAnalysis:
    name: str
    rl_steps: Mapping[str, int]  # policy label -> RL steps the run had taken behind it
    sets: Mapping[str, SetAnalysis]
    curves: Mapping[str, Curve]  # training curve name -> (run RL step, value) points
    iteration_starts: tuple[int, ...] = ()  # RL steps before each DAPO phase began


def _array(rows: Sequence[Sequence[float | None]]) -> FloatMatrix:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def parse_analysis(name: str, document: Mapping[str, Any]) -> RunAnalysis:
    """A run's analysis.json; an older one without per-problem figures gets none (its
    comparisons then have no intervals)."""
    sets = {
        set_name: SetAnalysis(
            tuple(figures["policies"]),
            tuple(figures.get("problem_ids") or ()),
            _array(figures["forgetting"]),
            _array(figures["similarity"]),
            {k: _array(v) for k, v in (figures.get("per_problem") or {}).items()},
        )
        for set_name, figures in document["sets"].items()
    }
    curves = {
        curve: tuple((int(step), float(value)) for step, value in points)
        for curve, points in (document.get("training") or {}).items()
    }
    steps = {p["label"]: int(p["rl_steps"]) for p in document["policies"]}
    starts = tuple(int(s) for s in document.get("iteration_starts") or ())
    return RunAnalysis(name, steps, sets, curves, starts)


def figure_order(name: str) -> tuple[int, int]:
    """avg@n first, then pass@k by growing k."""
    match = re.fullmatch(r"(avg|pass)@(\d+|n)", name)
    if match is None:
        return (2, 0)
    return (0 if match[1] == "avg" else 1, int(match[2]) if match[2].isdigit() else 0)


def table_figures(runs: Sequence[RunAnalysis], set_name: str) -> list[str]:
    """The figures every run has per problem on the set, pass@1 left out (it is avg@n)."""
    shared = set.intersection(*(set(r.sets[set_name].per_problem) for r in runs))
    return sorted(shared - {"pass@1"}, key=figure_order)


def shared_sets(runs: Sequence[RunAnalysis]) -> list[str]:
    return sorted(set.intersection(*(set(run.sets) for run in runs)))


def policy_at(run: RunAnalysis, set_name: str, rl_steps: int) -> int | None:
    """Index of the set's last policy evaluated at `rl_steps`, if any."""
    found = [i for i, p in enumerate(run.sets[set_name].policies) if run.rl_steps[p] == rl_steps]
    return found[-1] if found else None


def _policy_index(run: RunAnalysis, set_name: str, rl_steps: int) -> int:
    index = policy_at(run, set_name, rl_steps)
    if index is None:
        raise ValueError(f"{run.name} has no {set_name} evaluation at {rl_steps} RL steps")
    return index


def equal_steps(runs: Sequence[RunAnalysis], set_name: str) -> list[int]:
    """RL steps at which every run evaluated a policy on the set."""
    per_run = [{run.rl_steps[p] for p in run.sets[set_name].policies} for run in runs]
    return sorted(set.intersection(*per_run))


def last_steps(run: RunAnalysis, set_name: str) -> int:
    return run.rl_steps[run.sets[set_name].policies[-1]]


def figure_values(
    run: RunAnalysis, set_name: str, figure: str, rl_steps: int, problems: Sequence[str]
) -> FloatMatrix:
    """The per-problem values of a figure of the run's policy at `rl_steps`, in `problems`'
    order (so two runs pair problem by problem)."""
    analysis = run.sets[set_name]
    index = _policy_index(run, set_name, rl_steps)
    position = {pid: i for i, pid in enumerate(analysis.problem_ids)}
    row: FloatMatrix = analysis.per_problem[figure][index][[position[p] for p in problems]]
    return row


@dataclass(frozen=True)
class FigureComparison:
    """One figure of both arms at one point each: their means over seeds and A - B."""

    set_name: str
    figure: str
    ours_steps: int
    theirs_steps: int
    ours: float
    theirs: float
    difference: Interval


def compare_figure(
    ours: Sequence[RunAnalysis],
    theirs: Sequence[RunAnalysis],
    set_name: str,
    figure: str,
    steps: tuple[int, int],
) -> FigureComparison:
    """A's policy at steps[0] against B's at steps[1], paired seed by seed and problem by
    problem (the problems every run of both arms evaluated)."""
    if len(ours) != len(theirs):
        raise ValueError(f"pairs need as many runs of each arm, got {len(ours)} and {len(theirs)}")
    problems = sorted(
        set.intersection(*(set(r.sets[set_name].problem_ids) for r in (*ours, *theirs)))
    )
    a = [figure_values(run, set_name, figure, steps[0], problems) for run in ours]
    b = [figure_values(run, set_name, figure, steps[1], problems) for run in theirs]
    difference = paired_interval([x - y for x, y in zip(a, b, strict=True)])
    return FigureComparison(
        set_name, figure, *steps, float(np.mean(a)), float(np.mean(b)), difference
    )


def base_figure(runs: Sequence[RunAnalysis], set_name: str, figure: str) -> float | None:
    """The base policy's figure (0 RL steps), mean over the runs that evaluated it."""
    values = [
        float(run.sets[set_name].per_problem[figure][index].mean())
        for run in runs
        if (index := policy_at(run, set_name, 0)) is not None
    ]
    return float(np.mean(values)) if values else None


def differential_forgetting(
    ours: Sequence[RunAnalysis], theirs: Sequence[RunAnalysis], set_name: str
) -> tuple[list[int], FloatMatrix]:
    """(RL steps, D): D[i, j] = F_B[i, j] - F_A[i, j] between the policies at the i-th and
    j-th of the RL steps every run of both evaluated, mean over the seed pairs."""
    steps = equal_steps([*ours, *theirs], set_name)

    def aligned(run: RunAnalysis) -> FloatMatrix:
        indices = [_policy_index(run, set_name, s) for s in steps]
        matrix: FloatMatrix = run.sets[set_name].forgetting[np.ix_(indices, indices)]
        return matrix

    pairs = [aligned(b) - aligned(a) for a, b in zip(ours, theirs, strict=True)]
    return steps, np.mean(pairs, axis=0)


def own_similarity(runs: Sequence[RunAnalysis], set_name: str) -> dict[int, list[float]]:
    """RL steps -> each run's within-policy similarity of its policy at those steps."""
    points: dict[int, list[float]] = {}
    for run in runs:
        analysis = run.sets[set_name]
        for index, label in enumerate(analysis.policies):
            if policy_at(run, set_name, run.rl_steps[label]) == index:
                value = analysis.similarity[index, index]
                points.setdefault(run.rl_steps[label], []).append(float(value))
    return dict(sorted(points.items()))


def mean_curve(runs: Sequence[RunAnalysis], curve: str) -> Curve:
    """The curve's mean over the runs at each RL step any of them recorded."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for step, value in run.curves.get(curve, ()):
            by_step.setdefault(step, []).append(value)
    return tuple((step, float(np.mean(values))) for step, values in sorted(by_step.items()))


def verdict(comparisons: Sequence[FigureComparison], ours: str, theirs: str) -> str:
    """One sentence from the intervals: ahead (some interval above 0, none below),
    behind (the reverse), no difference detected (every interval holds 0), or mixed."""
    above = [c for c in comparisons if c.difference.sign > 0]
    below = [c for c in comparisons if c.difference.sign < 0]
    seeds = comparisons[0].difference.seeds if comparisons else 0
    where = f"after {comparisons[0].ours_steps} RL steps" if comparisons else ""
    power = f"({seeds} seed pair{'s' if seeds != 1 else ''}, paired bootstrap 95% intervals)"
    if above and not below:
        standing = f"{ours} ahead of {theirs}"
    elif below and not above:
        standing = f"{ours} behind {theirs}"
    elif not above:
        standing = f"No difference detected at this power between {ours} and {theirs}"
    else:
        standing = f"{ours} ahead of {theirs} on some figures and behind on others"
    details = "; ".join(_detail(c) for c in comparisons)
    return f"{standing} {where} {power}: {details}"


def _detail(comparison: FigureComparison) -> str:
    d = comparison.difference
    return (
        f"{comparison.set_name} {comparison.figure} {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
    )


@dataclass(frozen=True)
class Arms:
    """Arm A's runs and arm B's, the i-th of each from the same seed."""

    ours_name: str
    theirs_name: str
    ours: tuple[RunAnalysis, ...]
    theirs: tuple[RunAnalysis, ...]

    @property
    def runs(self) -> tuple[RunAnalysis, ...]:
        return (*self.ours, *self.theirs)


def headline_figures(figures: Sequence[str]) -> list[str]:
    """avg@n and the largest pass@k: the figures the sentence and the curves follow."""
    averages = [f for f in figures if f.startswith("avg@")]
    passes = [f for f in figures if f.startswith("pass@")]
    return averages[:1] + passes[-1:]


def table_one(arms: Arms, set_name: str) -> list[FigureComparison]:
    """Every figure at the last RL step both arms evaluated (the paper's Table 1)."""
    steps = equal_steps(arms.runs, set_name)
    if not steps:
        return []
    return [
        compare_figure(arms.ours, arms.theirs, set_name, figure, (steps[-1], steps[-1]))
        for figure in table_figures(arms.runs, set_name)
    ]


def along_steps(arms: Arms, set_name: str) -> list[FigureComparison]:
    """The headline figures at every RL step both arms evaluated (Fig. 4's points)."""
    figures = headline_figures(table_figures(arms.runs, set_name))
    return [
        compare_figure(arms.ours, arms.theirs, set_name, figure, (step, step))
        for step in equal_steps(arms.runs, set_name)
        for figure in figures
    ]


def final_comparisons(arms: Arms) -> list[FigureComparison]:
    """Each arm's last evaluated policy against the other's, on the headline figures of
    every set (an ablation that took other RL steps than A is compared this way)."""
    comparisons = []
    for set_name in shared_sets(arms.runs):
        steps = (last_steps(arms.ours[0], set_name), last_steps(arms.theirs[0], set_name))
        for figure in headline_figures(table_figures(arms.runs, set_name)):
            comparisons.append(compare_figure(arms.ours, arms.theirs, set_name, figure, steps))
    return comparisons

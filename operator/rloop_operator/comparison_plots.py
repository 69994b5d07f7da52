"""The pictures of `rloop report --compare` (the paper's Fig. 4, 5a-c and 6 for two arms),
readable on their own: titles say what is measured and over how many seeds, axes carry
units, every line has a legend entry.

Drawn on matplotlib `Figure`s (the Agg canvas: no pyplot, no display).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rloop_operator.run_comparison import (
    Arms,
    FigureComparison,
    FloatMatrix,
    RunAnalysis,
    figure_values,
    mean_curve,
    own_similarity,
)

COLOURS = ("tab:blue", "tab:red")  # arm A (RLoop), arm B (vanilla), as in the paper
CURVES = {
    "token_entropy": ("token entropy (Fig. 5c)", "mean entropy per response token (nats)"),
    "grad_norm": ("gradient norm (Fig. 6)", "global gradient norm before clipping"),
    "accuracy": ("training accuracy", "share of the step's rollouts verified correct"),
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _seeds(arms: Arms) -> str:
    return f"{len(arms.ours)} seed pair{'s' if len(arms.ours) != 1 else ''}"


def forgetting_png(arms: Arms, matrices: Mapping[str, tuple[Sequence[int], FloatMatrix]]) -> bytes:
    """Fig. 5a: per set, forgetting of B minus forgetting of A; blue: A forgets less."""
    figure = Figure(figsize=(max(8.0, 6.2 * len(matrices)), 5.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(matrices)))
    for axis, (set_name, (steps, difference)) in zip(axes, matrices.items(), strict=True):
        shown = np.where(np.triu(np.ones_like(difference, dtype=bool), k=1), difference, np.nan)
        limit = max(0.02, float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 0.0)
        image = axis.imshow(shown, cmap="RdBu", vmin=-limit, vmax=limit)
        labels = [str(s) for s in steps]
        axis.set_xticks(range(len(steps)), labels=labels)
        axis.set_yticks(range(len(steps)), labels=labels)
        axis.set(xlabel="later policy j (RL steps)", ylabel="earlier policy i (RL steps)")
        axis.set_title(f"validation set {set_name}")
        for (i, j), value in np.ndenumerate(shown):
            if np.isfinite(value):
                dark = abs(value) > 0.6 * limit
                colour = "white" if dark else "black"
                axis.text(j, i, f"{value:+.3f}", ha="center", va="center", color=colour)
        figure.colorbar(
            image, ax=axis, fraction=0.046, pad=0.04,
            label=f"share of problems: {arms.theirs_name} minus {arms.ours_name}",
        )  # fmt: skip
    figure.suptitle(
        f"Differential forgetting (Fig. 5a): forgetting of {arms.theirs_name} minus "
        f"{arms.ours_name}, mean of {_seeds(arms)}\nforgetting (i, j): share of problems the "
        "policy at step i solves (a correct sample)\nand the one at step j does not; "
        f"blue: {arms.ours_name} forgets less",
        fontsize=10,
    )
    return _png(figure)


def diversity_png(arms: Arms, set_names: Sequence[str]) -> bytes:
    """Fig. 5b: each arm's own similarity per evaluated RL step, seeds and their mean."""
    figure = Figure(figsize=(max(8.0, 6.2 * len(set_names)), 5.0), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(set_names)))
    for axis, set_name in zip(axes, set_names, strict=True):
        for runs, name, colour in ((arms.ours, arms.ours_name, COLOURS[0]),
                                   (arms.theirs, arms.theirs_name, COLOURS[1])):  # fmt: skip
            points = own_similarity(runs, set_name)
            steps = list(points)
            for step in steps:
                axis.scatter(
                    [step] * len(points[step]), points[step], color=colour, alpha=0.3, s=12
                )
            means = [float(np.mean(points[s])) for s in steps]
            axis.plot(steps, means, color=colour, marker="o", label=f"{name} (mean; dots: seeds)")
        axis.set(title=f"validation set {set_name}", xlabel="RL steps",
                 ylabel="bigram Jaccard of two own solutions")  # fmt: skip
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(
        f"Within-policy similarity (Fig. 5b, Appendix A diagonal), {_seeds(arms)}\n"
        "bigram Jaccard index of two distinct samples of a problem\n"
        "(mean per problem, then over problems): lower = more diverse solutions",
        fontsize=10,
    )
    return _png(figure)


def curves_png(arms: Arms, iteration_starts: Sequence[int]) -> bytes:
    """Fig. 5c and 6 (and train accuracy): per RL step, the mean over each arm's runs."""
    figure = Figure(figsize=(5.4 * len(CURVES), 4.4), layout="constrained")
    axes = figure.subplots(1, len(CURVES), sharex=True)
    for axis, (curve, (title, ylabel)) in zip(axes, CURVES.items(), strict=True):
        for runs, name, colour in ((arms.ours, arms.ours_name, COLOURS[0]),
                                   (arms.theirs, arms.theirs_name, COLOURS[1])):  # fmt: skip
            points = mean_curve(runs, curve)
            if points:
                axis.plot(*zip(*points, strict=True), color=colour, linewidth=1, label=name)
        for start in (s for s in iteration_starts if s > 0):
            axis.axvline(start + 0.5, color="grey", linestyle="--", linewidth=0.8)
        axis.set(title=title, xlabel="RL step", ylabel=ylabel)
        axis.grid(alpha=0.3)
        if any(not line.get_label().startswith("_") for line in axis.get_lines()):
            axis.legend()
        else:
            axis.text(0.5, 0.5, "not recorded", transform=axis.transAxes, ha="center")
    figure.suptitle(
        f"DAPO phases per RL step, mean of each arm's {len(arms.ours)} run(s); dashed: "
        f"{arms.ours_name} starts a new iteration"
    )
    return _png(figure)


def _seed_lines(
    runs: Sequence[RunAnalysis], set_name: str, figure: str
) -> list[tuple[list[int], list[float]]]:
    """Each run's figure (mean over problems) at each of its evaluated policies' steps."""
    lines = []
    for run in runs:
        analysis = run.sets[set_name]
        steps = sorted({run.rl_steps[p] for p in analysis.policies})
        ids = analysis.problem_ids
        values = [float(figure_values(run, set_name, figure, s, ids).mean()) for s in steps]
        lines.append((steps, values))
    return lines


def accuracy_png(arms: Arms, along: Mapping[str, Sequence[FigureComparison]]) -> bytes:
    """Fig. 4: per set, the headline figures of both arms along RL steps (top) and A - B
    with its 95% interval (bottom)."""
    figure = Figure(figsize=(max(8.0, 6.4 * len(along)), 8.4), layout="constrained")
    axes = np.array(figure.subplots(2, len(along), squeeze=False))
    for column, (set_name, comparisons) in enumerate(along.items()):
        top, bottom = axes[0, column], axes[1, column]
        for index, figure_name in enumerate(dict.fromkeys(c.figure for c in comparisons)):
            chosen = [c for c in comparisons if c.figure == figure_name]
            style = ("-", "--")[index % 2]
            for runs, name, colour in ((arms.ours, arms.ours_name, COLOURS[0]),
                                       (arms.theirs, arms.theirs_name, COLOURS[1])):  # fmt: skip
                for steps, line in _seed_lines(runs, set_name, figure_name):
                    top.plot(steps, line, color=colour, linestyle=style, alpha=0.2, linewidth=0.8)
                means = [c.ours if runs is arms.ours else c.theirs for c in chosen]
                top.plot([c.ours_steps for c in chosen], means, color=colour, linestyle=style,
                         marker="o", label=f"{name} {figure_name}")  # fmt: skip
            estimates = [c.difference.estimate for c in chosen]
            errors = [[c.difference.estimate - c.difference.low for c in chosen],
                      [c.difference.high - c.difference.estimate for c in chosen]]  # fmt: skip
            offset = 0.15 * (index - 0.5) * max(1, chosen[-1].ours_steps) / 10
            bottom.errorbar([c.ours_steps + offset for c in chosen], estimates, yerr=errors,
                            marker="o", capsize=4, linestyle=style, label=figure_name)  # fmt: skip
        top.set(title=f"{set_name}: held-out figures (bold: mean; faint: each seed)",
                xlabel="RL steps", ylabel="share of problems")  # fmt: skip
        bottom.axhline(0.0, color="black", linewidth=0.8)
        bottom.set(title=f"{set_name}: {arms.ours_name} minus {arms.theirs_name}, 95% interval",
                   xlabel="RL steps", ylabel="difference (share of problems)")  # fmt: skip
        for axis in (top, bottom):
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.suptitle(
        f"Accuracy along RL steps (Fig. 4), {_seeds(arms)}\nintervals: paired bootstrap "
        "over seeds and problems"
    )
    return _png(figure)


def write_pictures(
    target: Path,
    arms: Arms,
    along: Mapping[str, Sequence[FigureComparison]],
    forgetting: Mapping[str, tuple[Sequence[int], FloatMatrix]],
) -> list[Path]:
    """Every comparison picture as a PNG under `target`; their paths."""
    target.mkdir(parents=True, exist_ok=True)
    pictures = {
        "accuracy.png": accuracy_png(arms, along),
        "forgetting-difference.png": forgetting_png(arms, forgetting),
        "diversity.png": diversity_png(arms, list(along)),
        "entropy-gradnorm.png": curves_png(arms, arms.ours[0].iteration_starts),
    }
    for name, png in pictures.items():
        (target / name).write_bytes(png)
    return [target / name for name in pictures]

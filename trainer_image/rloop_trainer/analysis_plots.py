"""PNG pictures of the run analysis (run_analysis.py's document), readable on their own:
each title says what is measured, axes carry labels, heatmaps a colour bar and their
values in the cells.

Drawn on matplotlib `Figure`s, which render with the Agg canvas: no pyplot, no display,
no global state shared between pictures.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

CURVE_TITLES = {
    "accuracy": ("training accuracy", "share of rollouts verified correct"),
    "token_entropy": ("token entropy", "mean entropy per response token (nats)"),
    "grad_norm": ("gradient norm", "global gradient norm (mean over the step's updates)"),
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _heatmap(
    figure: Figure,
    axis: Axes,
    matrix: Sequence[Sequence[float | None]],
    labels: Sequence[str],
    vmax: float,
    colour_bar: str,
) -> None:
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    image = axis.imshow(values, vmin=0.0, vmax=vmax, cmap="viridis")
    axis.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels=labels)
    axis.set_xlabel("policy j (column)")
    axis.set_ylabel("policy i (row)")
    for (i, j), value in np.ndenumerate(values):
        text = "n/a" if np.isnan(value) else f"{value:.2f}"
        bright = not np.isnan(value) and value > 0.6 * vmax
        axis.text(j, i, text, ha="center", va="center", color="black" if bright else "white")
    figure.colorbar(image, ax=axis, label=colour_bar, fraction=0.046, pad=0.04)


def learning_forgetting_png(set_name: str, comparison: Mapping[str, Any]) -> bytes:
    figure = Figure(figsize=(13, 5.6), layout="constrained")
    learned_axis, forgotten_axis = figure.subplots(1, 2)
    labels = comparison["policies"]
    cells = [v for m in ("learning", "forgetting") for row in comparison[m] for v in row]
    vmax = max([0.05, *(v for v in cells if v is not None)])
    _heatmap(figure, learned_axis, comparison["learning"], labels, vmax, "share of problems")
    learned_axis.set_title("learned: unsolved by policy i, solved by policy j")
    _heatmap(figure, forgotten_axis, comparison["forgetting"], labels, vmax, "share of problems")
    forgotten_axis.set_title("forgotten: solved by policy i, unsolved by policy j")
    rate = comparison["forgetting_rate"]
    figure.suptitle(
        f"{set_name}: learning and forgetting between the run's policies "
        f"({comparison['problems']} problems)\n"
        "solved = at least one of the policy's samples verified correct; forgetting rate "
        f"(mean over earlier i, later j): {'n/a' if rate is None else f'{rate:.3f}'}"
    )
    return _png(figure)


def similarity_png(set_name: str, comparison: Mapping[str, Any]) -> bytes:
    figure = Figure(figsize=(7.2, 6.0), layout="constrained")
    axis = figure.subplots()
    _heatmap(
        figure, axis, comparison["similarity"], comparison["policies"], 1.0,
        "mean bigram Jaccard index of two solutions (0 = no shared bigram, 1 = alike)",
    )  # fmt: skip
    axis.set_title(
        f"{set_name}: similarity of the policies' solutions (Appendix A)\n"
        "cell (i, j): one solution of i vs one of j, every pair, mean per problem, then\n"
        f"over {comparison['problems']} problems; diagonal: a policy's own distinct\n"
        "solution pairs, N x (N-1) a problem (higher = less diverse)",
        fontsize=10,
    )
    return _png(figure)


def training_png(curves: Mapping[str, Sequence[Sequence[float]]], starts: Sequence[int]) -> bytes:
    figure = Figure(figsize=(15, 4.4), layout="constrained")
    axes = figure.subplots(1, len(CURVE_TITLES), sharex=True)
    for axis, (name, (title, ylabel)) in zip(axes, CURVE_TITLES.items(), strict=True):
        axis.set(title=title, xlabel="RL step of the run", ylabel=ylabel)
        axis.grid(alpha=0.3)
        for start in (s for s in starts if s > 0):
            axis.axvline(start + 0.5, color="grey", linestyle="--", linewidth=0.8)
        points = curves.get(name)
        if not points:
            axis.text(0.5, 0.5, "not recorded", transform=axis.transAxes, ha="center")
            continue
        steps, values = zip(*points, strict=True)
        axis.plot(steps, values, marker=".", linewidth=1)
    figure.suptitle("DAPO phases along the run (dashed lines: a new iteration's DAPO starts)")
    return _png(figure)


def validation_png(validation: Mapping[str, Mapping[str, Sequence[Sequence[Any]]]]) -> bytes:
    figure = Figure(figsize=(6.5 * len(validation), 4.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(validation)))
    for axis, (set_name, metrics) in zip(axes, validation.items(), strict=True):
        for metric, points in metrics.items():
            if metric == "pass@1":
                continue  # the same numbers as avg@n
            label = f"{metric} (= pass@1)" if metric.startswith("avg@") else metric
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        first = next(iter(metrics.values()))
        for steps, value, label in first:
            axis.annotate(label, (steps, value), textcoords="offset points", xytext=(4, -12))
        axis.set(title=f"{set_name}: accuracy of each evaluated policy", ylim=(-0.02, 1.02))
        axis.set(xlabel="RL steps behind the policy", ylabel="avg@n, pass@k")
        axis.margins(x=0.12)
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
    return _png(figure)


def draw_pictures(document: Mapping[str, Any]) -> dict[str, bytes]:
    """File name -> PNG for every picture the document has data for."""
    pictures: dict[str, bytes] = {}
    for set_name, comparison in document["sets"].items():
        pictures[f"learning-forgetting-{set_name}.png"] = learning_forgetting_png(
            set_name, comparison
        )
        pictures[f"similarity-{set_name}.png"] = similarity_png(set_name, comparison)
    if document["training"]:
        pictures["training.png"] = training_png(document["training"], document["iteration_starts"])
    if document["validation"]:
        pictures["validation.png"] = validation_png(document["validation"])
    return pictures

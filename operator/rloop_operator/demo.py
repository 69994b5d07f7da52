"""`rloop demo`: a tiny RLoop on CPU, and with --compare vanilla DAPO at the same RL steps.

Builds a tiny model and the scratchpad-sums task, whose problems have many correct
solutions (rloop_trainer.demo_assets), writes the RLoopRun YAML of each run into the
work directory (so `rloop run` can re-run either by hand), runs them with the local
executor, then prints one table per run and plots the curves. Everything is
resumable: run it again to continue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from rich.console import Console
from rich.table import Table

from rloop_operator.api import IterationRecord, RLoopRunSpec
from rloop_operator.local import LocalExecutor, Reporter
from rloop_operator.plan import RunView

DEMO_ITERATIONS = 3
HELDOUT = "heldout"
# (RL steps taken so far, the iteration's record): a table row and a point on a curve.
Rows = list[tuple[int, IterationRecord]]


def demo_run_document(workdir: Path, mode: str, iterations: int) -> dict[str, Any]:
    """The demo's RLoopRun; examples/local-run.yaml is this with workdir /tmp/rloop-demo."""
    root = f"file://{workdir.resolve()}"
    return {
        "apiVersion": "rloop.io/v1alpha1",
        "kind": "RLoopRun",
        "metadata": {"name": "tiny" if mode == "rloop" else f"tiny-vanilla-{iterations}"},
        "spec": {
            "model": {"base": f"{root}/assets/policy"},
            "data": {
                "train": f"{root}/assets/train.parquet",
                "validation": [{"name": HELDOUT, "uri": f"{root}/assets/heldout.parquet",
                                "samples": 8, "passAt": [1, 4, 8]}],
            },
            "iterations": iterations,
            "mode": mode,
            # 16 rollouts a prompt, as in the paper: with fewer, one success already puts
            # a prompt at or above the 0.1 threshold and no expert sample can exist.
            # A four-term scratchpad takes at most 22 tokens with its EOS: the soft overlong
            # penalty of the last 4 of 32 tokens only hits responses that ramble.
            "dapo": {"steps": 4, "groupSize": 16, "promptsPerStep": 4, "maxPromptTokens": 32,
                     "maxResponseTokens": 32, "overlongBuffer": 4, "lr": 1.0e-4,
                     "microBatch": 16, "updatesPerStep": 2, "checkpointEvery": 2,
                     "engine": "hf"},
            # The toy's train prompts are all of one difficulty (three terms): at the paper's
            # 0.1 almost none is hard and RFT gets no expert sample; 0.3 keeps the hardest.
            "filter": {"hardThreshold": 0.3},
            "rft": {"lr": 1.0e-4, "microBatch": 16, "batchSize": 16, "maxSeqTokens": 64},
            "eval": {"maxResponseTokens": 32},
            "resources": {"gpusPerNode": 0, "cpu": "2", "memory": "4Gi", "shmSize": "1Gi"},
            "storage": {"uri": f"{root}/store"},
            "maxRetries": 1,
        },
    }  # fmt: skip


def _write_run(workdir: Path, mode: str, iterations: int) -> Path:
    document = demo_run_document(workdir, mode, iterations)
    path = workdir / f"{document['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _metrics(uri: str) -> list[dict[str, float]]:
    path = Path(urlparse(uri).path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def iteration_table(title: str, rows: Rows) -> Table:
    """One row per iteration: (RL steps so far, that iteration's record)."""
    table = Table(title=title)
    for column in ("RL steps", "rollouts", "hard prompts", "expert samples",
                   f"{HELDOUT} avg@8", "pass@1", "pass@4", "pass@8"):  # fmt: skip
        table.add_column(column, justify="right")
    for steps, record in rows:
        metrics = record.metrics
        cells = [metrics.get(f"{HELDOUT}/{key}") for key in ("avg@8", "pass@1", "pass@4", "pass@8")]
        table.add_row(
            str(steps),
            *("-" if value is None else str(value)
              for value in (record.trajectories, record.hard_prompts, record.expert_samples)),
            *("-" if value is None else f"{value:.3f}" for value in cells),
        )  # fmt: skip
    return table


def _training_curve(run: RunView) -> tuple[list[float], list[float]]:
    """Training accuracy against RL steps counted across the run's DAPO phases."""
    steps: list[float] = []
    accuracy: list[float] = []
    for record in run.status.iterations:
        offset = steps[-1] if steps else 0.0
        for line in _metrics(f"{run.layout.rl(record.index)}/metrics.jsonl"):
            steps.append(offset + line["step"])
            accuracy.append(line["accuracy"])
    return steps, accuracy


def plot_curves(curves: dict[str, tuple[RunView, Rows]], png: Path) -> None:
    """Training accuracy per RL step, and held-out avg@8 after each iteration's RL steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (train_axis, heldout_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (run, rows) in curves.items():
        train_axis.plot(*_training_curve(run), marker=".", label=label)
        heldout = [(steps, r.metrics[f"{HELDOUT}/avg@8"]) for steps, r in rows
                   if f"{HELDOUT}/avg@8" in r.metrics]  # fmt: skip
        heldout_axis.plot(*zip(*heldout, strict=True), marker="o", label=label)
    train_axis.set(title="training accuracy per RL step", xlabel="RL step", ylabel="accuracy")
    heldout_axis.set(title=f"{HELDOUT} avg@8 (harder split)", xlabel="RL step", ylabel="avg@8")
    for axis in (train_axis, heldout_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=100)


def _run(workdir: Path, mode: str, iterations: int, report: Reporter) -> RunView:
    run_file = _write_run(workdir, mode, iterations)
    executor = LocalExecutor(run_file, workdir / "state" / run_file.stem, report)
    executor.run()
    return executor.view()


def _steps_per_iteration(run: RunView) -> int:
    assert isinstance(run.spec, RLoopRunSpec)
    return run.spec.dapo.steps


def run_demo(workdir: Path, compare: bool, console: Console, report: Reporter) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    console.log(f"building the tiny model and toy data in {workdir / 'assets'}")
    subprocess.run(
        [sys.executable, "-m", "rloop_trainer.demo_assets", str(workdir / "assets")], check=True
    )
    rloop = _run(workdir, "rloop", DEMO_ITERATIONS, report)
    steps = _steps_per_iteration(rloop)
    curves = {"RLoop": (rloop, [(steps * (r.index + 1), r) for r in rloop.status.iterations])}
    runs = [rloop]
    if compare:
        # Vanilla DAPO stopped after as many RL steps as each RLoop iteration had taken. The
        # runs are deterministic, so the longer ones repeat the shorter ones' first steps.
        vanilla = [_run(workdir, "vanilla", k, report) for k in range(1, DEMO_ITERATIONS + 1)]
        rows = [(steps * k, run.status.iterations[0]) for k, run in enumerate(vanilla, start=1)
                if run.status.iterations]  # fmt: skip
        curves["vanilla DAPO"] = (vanilla[-1], rows)
        runs += vanilla
    for label, (run, rows) in curves.items():
        console.print(iteration_table(f"{label}: {run.status.phase.value}", rows))
    png = workdir / "demo.png"
    plot_curves(curves, png)
    console.print(f"curves: {png}")
    return 0 if all(r.status.phase.value == "Succeeded" for r in runs) else 1

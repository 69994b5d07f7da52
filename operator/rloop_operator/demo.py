"""`rloop demo`: a tiny RLoop on CPU, and with --compare one vanilla DAPO run beside it.

Builds a tiny model and the scratchpad-sums task, whose problems have many correct
solutions (rloop_trainer.demo_assets), writes the RLoopRun YAML of each run into the
work directory (so `rloop run` can re-run either by hand), runs them with the local
executor, then prints what `rloop report` prints from their stores: each run's table
(the base policy first) and best policy, and with --compare what `rloop report --compare`
prints for one seed pair (vanilla is evaluated after each window of dapo.steps steps, as
RLoop after each iteration): Table 1 with intervals over the held-out problems, the
figures along the RL steps, the differential forgetting, each policy's own similarity
(its solutions' diversity), the forgetting rates, the pictures under WORKDIR/compare,
and last the sentence those intervals support. Everything is resumable: run it again to
continue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from rloop_operator.local_executor import LocalExecutor, Reporter
from rloop_operator.planning.inputs import RunView
from rloop_operator.report_command import compare_arms, load_run_report, print_summary

DEMO_ITERATIONS = 3
# The MLflow experiment of `rloop demo --mlflow URI`: both runs, compared at equal RL steps.
MLFLOW_EXPERIMENT = "rloop-demo"
HELDOUT = "heldout"
MODES = ("rloop", "vanilla")
LABELS = {"rloop": "RLoop", "vanilla": "vanilla DAPO"}


def demo_run_document(workdir: Path, mode: str, iterations: int) -> dict[str, Any]:
    """The demo's RLoopRun; examples/local-run.yaml is this with workdir /tmp/rloop-demo."""
    root = f"file://{workdir.resolve()}"
    return {
        "apiVersion": "rloop.io/v1alpha1",
        "kind": "RLoopRun",
        "metadata": {"name": "tiny" if mode == "rloop" else "tiny-vanilla"},
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


def write_demo_run(workdir: Path, mode: str, iterations: int, mlflow: str | None) -> Path:
    document = demo_run_document(workdir, mode, iterations)
    if mlflow is not None:
        tracker = {"trackingUri": mlflow, "experimentName": MLFLOW_EXPERIMENT}
        document["spec"]["tracking"] = {"mlflow": tracker}
    path = workdir / f"{document['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# A run's `rloop run` process, and an executor that reads its state.
Started = tuple[subprocess.Popen[bytes], LocalExecutor]


def _start(workdir: Path, mode: str, mlflow: str | None) -> Started:
    """`rloop run` of the mode's run in a process of its own, its output in a log file; the
    executor only reads the run's state for the progress display."""
    run_file = write_demo_run(workdir, mode, DEMO_ITERATIONS, mlflow)
    state_dir = workdir / "state" / run_file.stem
    command = [sys.executable, "-m", "rloop_operator.cli", "run", str(run_file)]
    with (workdir / f"{run_file.stem}.log").open("wb") as log:
        # Two runs share the cores: one thread each (the model is tiny) keeps them from
        # oversubscribing them.
        process = subprocess.Popen(
            [*command, "--state-dir", str(state_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
    return process, LocalExecutor(run_file, state_dir, lambda run, message: None)


def _follow(started: Sequence[Started], report: Reporter) -> list[RunView]:
    """Show the runs' progress until their processes end; their final views."""
    seen: dict[str, tuple[str, str]] = {}
    while True:
        running = [process.poll() is None for process, _ in started]
        for _, executor in started:
            run = executor.view()
            where = (run.status.progress or "", run.status.active_child or run.status.phase.value)
            report(run, None if seen.get(run.name) == where else f"{run.name}: {' '.join(where)}")
            seen[run.name] = where
        if not any(running):
            return [executor.view() for _, executor in started]
        time.sleep(1.0)


def run_demo(
    workdir: Path, compare: bool, console: Console, report: Reporter, mlflow: str | None = None
) -> list[RunView]:
    """Build the assets, run RLoop (and with `compare` vanilla DAPO beside it) to the end,
    showing progress through `report`, logging to the MLflow server `mlflow` if given; the
    runs' final views."""
    workdir.mkdir(parents=True, exist_ok=True)
    console.log(f"building the tiny model and toy data in {workdir / 'assets'}")
    subprocess.run(
        [sys.executable, "-m", "rloop_trainer.demo_assets", str(workdir / "assets")], check=True
    )
    # Vanilla DAPO is one run whose windows of dapo.steps steps are each evaluated, so the
    # two runs meet at equal RL steps after every iteration.
    # The two runs go side by side, each in its own `rloop run` (its log: WORKDIR/<run>.log).
    started = [_start(workdir, mode, mlflow) for mode in MODES[: 2 if compare else 1]]
    try:
        return _follow(started, report)
    finally:
        for process, _ in started:
            process.wait()


def print_demo_report(workdir: Path, runs: Sequence[RunView], console: Console) -> int:
    """What `rloop report` prints of the runs (with two, --compare's comparison, its
    sentence last); 0 if every run succeeded."""
    loaded = [load_run_report(run.layout.root) for run in runs]
    for mode, run in zip(MODES, loaded, strict=False):
        print_summary(replace(run.summary, name=LABELS[mode]), None, console)
    console.print("each run's own analysis pictures: rloop report RUN --out DIR")
    if len(loaded) == 2:
        names = (LABELS["rloop"], LABELS["vanilla"])
        compare_arms(loaded[:1], loaded[1:], names, workdir / "compare", console)
    return 0 if all(r.status.phase.value == "Succeeded" for r in runs) else 1

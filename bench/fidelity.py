"""RLoop against vanilla DAPO at equal RL steps, over seeds: a small-scale replication of the
direction of the paper's Table 1 on the demo's task (accuracies only; nothing here is timed
but the whole, which RESULTS.md states with the machine's load).

    python bench/fidelity.py WORKDIR [--seeds 0 1 2] [--iterations 3]

For each seed, one RLoop run (iterations x dapo.steps RL steps) and one vanilla run (one
DAPO run of as many steps, evaluated after every window of dapo.steps) with the demo's
settings (`rloop_operator.demo.demo_run_document`) and `spec.seed` set to the seed; the two
runs of a seed go side by side, each in its own `rloop run`. Then, at each evaluated RL
step, held-out avg@8 and pass@k as the mean and the sample standard deviation over the
seeds; each run's forgetting rate; and the mean bigram-Jaccard similarity of each policy's
held-out responses to the base policy's. Prints markdown for RESULTS.md and writes it, with
every number per seed, to WORKDIR/fidelity.json. Resumable: run it again to continue.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rloop_operator.demo import HELDOUT, demo_run_document
from rloop_operator.report_command import StoreReader, load_summary

MODES = ("rloop", "vanilla")


def run_document(workdir: Path, mode: str, seed: int, iterations: int) -> dict[str, Any]:
    document = demo_run_document(workdir, mode, iterations)
    document["metadata"]["name"] = f"{mode}-s{seed}"
    document["spec"]["seed"] = seed
    return document


def run_pair(workdir: Path, seed: int, iterations: int) -> dict[str, Path]:
    """Both runs of one seed, side by side; the store prefix of each."""
    processes, prefixes = [], {}
    for mode in MODES:
        document = run_document(workdir, mode, seed, iterations)
        name = document["metadata"]["name"]
        run_file = workdir / f"{name}.yaml"
        run_file.write_text(yaml.safe_dump(document, sort_keys=False))
        command = [sys.executable, "-m", "rloop_operator.cli", "run", str(run_file)]
        command += ["--state-dir", str(workdir / "state" / name)]
        with (workdir / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT,
                    env=os.environ | {"OMP_NUM_THREADS": "1"},
                )
            )  # fmt: skip
        prefixes[mode] = workdir / "store" / "local" / name / "local"
    codes = [process.wait() for process in processes]
    if any(codes):
        raise SystemExit(f"seed {seed}: a run failed ({codes}); see {workdir}/*.log")
    return prefixes


def run_figures(prefix: Path) -> dict[str, Any]:
    """One run's held-out metrics per RL step, forgetting rate and similarity to the base."""
    reader = StoreReader()
    summary = load_summary(f"file://{prefix}", reader)
    analysis = reader.read_json(f"file://{prefix}/analysis/analysis.json")
    heldout = analysis["sets"][HELDOUT]
    similarity = heldout["similarity"]
    return {
        "metrics": {str(row.rl_steps): dict(row.metrics) for row in summary.rows},
        "forgetting_rate": heldout["forgetting_rate"],
        "similarity_to_base": {
            str(row.rl_steps): similarity[0][index] for index, row in enumerate(summary.rows)
        },
    }


def mean_and_spread(values: Sequence[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {spread:.3f}"


def markdown(figures: dict[str, dict[str, dict[str, Any]]], metrics: Sequence[str]) -> str:
    """figures[mode][seed] -> the tables: metrics per RL step, then forgetting and similarity."""
    seeds = sorted(figures["rloop"])
    steps = sorted({int(s) for s in figures["rloop"][seeds[0]]["metrics"]})
    lines = ["| RL steps | run | " + " | ".join(metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]  # fmt: skip
    for step in steps:
        for mode in MODES:
            at_step = [figures[mode][seed]["metrics"][str(step)] for seed in seeds]
            cells = [mean_and_spread([values[m] for values in at_step]) for m in metrics]
            lines.append(f"| {step} | {mode} | " + " | ".join(cells) + " |")
    lines += ["", "| run | forgetting rate | similarity to the base policy at the last step |",
              "|---|---|---|"]  # fmt: skip
    for mode in MODES:
        rates = [figures[mode][seed]["forgetting_rate"] for seed in seeds]
        similar = [figures[mode][seed]["similarity_to_base"][str(steps[-1])] for seed in seeds]
        lines.append(f"| {mode} | {mean_and_spread(rates)} | {mean_and_spread(similar)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    assets = [sys.executable, "-m", "rloop_trainer.demo_assets", str(workdir / "assets")]
    subprocess.run(assets, check=True)
    figures: dict[str, dict[str, dict[str, Any]]] = {mode: {} for mode in MODES}
    for seed in args.seeds:
        for mode, prefix in run_pair(workdir, seed, args.iterations).items():
            figures[mode][str(seed)] = run_figures(prefix)
    metrics = [f"{HELDOUT}/avg@8", f"{HELDOUT}/pass@4", f"{HELDOUT}/pass@8"]
    table = markdown(figures, metrics)
    minutes = (time.monotonic() - started) / 60
    (workdir / "fidelity.json").write_text(json.dumps({"figures": figures, "minutes": minutes}))
    print(table)
    print(
        f"\n{len(args.seeds)} seeds, {minutes:.1f} minutes of wall time (load: {os.getloadavg()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The vanilla-only pilot that chose the replication's budget (bench/fidelity.md).

One vanilla DAPO run per setting, evaluated after every window: does train accuracy
rise clearly while held-out avg@32 stalls or falls, pass@32 drops below the base
policy's, and the policy's own similarity (its solutions narrowing) rises?
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fidelity_runs import Arm, local_path, run_arm, run_view
from fidelity_task import IN_DIST, OUT_DIST, SAMPLES, Budget, run_document

VANILLA = Arm("vanilla", "vanilla", "one DAPO run")


def pilot_name(budget: Budget, seed: int) -> str:
    return f"pilot-lr{budget.lr:g}-p{budget.prompts_per_step}-s{seed}"


def run_pilot(workdir: Path, budget: Budget, seed: int, say: Callable[[str], None]) -> None:
    document = run_document(workdir, pilot_name(budget, seed), "vanilla", seed, budget)
    run_arm(run_view(document), VANILLA, None, say)


def pilot_rows(workdir: Path, budget: Budget, seed: int) -> list[dict[str, Any]]:
    """Per evaluated policy: RL steps, the window's train accuracy, each held-out set's
    avg@32 and pass@32, and the policy's own similarity on each set."""
    document = run_document(workdir, pilot_name(budget, seed), "vanilla", seed, budget)
    run = run_view(document)
    analysis = json.loads(local_path(run.layout.analysis_report()).read_text())
    accuracy = {int(step): value for step, value in analysis["training"].get("accuracy", [])}
    rows = []
    for index, policy in enumerate(analysis["policies"]):
        steps = int(policy["rl_steps"])
        window = [accuracy[s] for s in range(steps - budget.steps + 1, steps + 1) if s in accuracy]
        report = json.loads(local_path(f"{policy['eval_uri']}/report.json").read_text())
        row: dict[str, Any] = {
            "rl_steps": steps,
            "train_accuracy": statistics.fmean(window) if window else None,
        }
        for set_name in (IN_DIST, OUT_DIST):
            figures = report["sets"][set_name]
            similarity = analysis["sets"][set_name]["similarity"]
            row[f"{set_name}/avg@{SAMPLES}"] = figures["avg@n"]
            row[f"{set_name}/pass@{SAMPLES}"] = figures["pass@k"][str(SAMPLES)]
            row[f"{set_name}/own similarity"] = similarity[index][index]
        rows.append(row)
    return rows


def pilot_markdown(budget: Budget, seed: int, rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = [
        f"Pilot: vanilla DAPO, seed {seed}, {json.dumps(asdict(budget))}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = ["-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                 for v in row.values()]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

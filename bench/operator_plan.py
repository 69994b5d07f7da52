"""plan() decisions per second for a run with 50 iterations of history.

Baseline: deep-copying the same status, the least any reconcile must do to hand a
new status on. Prints both rates and their ratio (ours / baseline).

    .venv/bin/python bench/operator_plan.py [--iterations 50] [--seconds 3]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rloop_operator.api import IterationRecord, RLoopRunStatus, parse_spec
from rloop_operator.children import Child, child_name
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.inputs import Observed, RunView
from rloop_operator.planning.plan import plan
from rloop_operator.stages import launcher_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_with_history(iterations: int) -> tuple[RunView, Observed]:
    """A run in iteration `iterations` (0-based), its DAPO child just succeeded."""
    spec = parse_spec(
        {
            "model": {"base": "s3://b/base"},
            "data": {"train": "s3://b/train.parquet"},
            "storage": {"uri": "s3://b/rloop"},
            "iterations": iterations + 1,
        }
    )
    history = [
        IterationRecord(
            index=i,
            started_at=T0 + timedelta(hours=i),
            finished_at=T0 + timedelta(hours=i + 1),
            rl_job=child_name("bench", i, Stage.EXPLORING, 0),
            filter_job=child_name("bench", i, Stage.FILTERING, 0),
            rft_job=child_name("bench", i, Stage.CONSOLIDATING, 0),
            trajectories=102400,
            hard_prompts=300,
            expert_samples=900,
            policy=f"s3://b/rloop/ns/bench/uid/iter-{i + 1:03d}/policy",
            metrics={"aime24/avg@32": 0.3, "aime24/pass@32": 0.6},
        )
        for i in range(iterations)
    ]
    current = IterationRecord(
        index=iterations, started_at=T0, rl_job=child_name("bench", iterations, Stage.EXPLORING, 0)
    )
    records = (*history, current)
    status = RLoopRunStatus(
        phase=Phase.RUNNING,
        stage=Stage.EXPLORING,
        iteration=iterations,
        iterations=records,
        started_at=T0,
        policy="s3://b/base",
        active_child=child_name("bench", iterations, Stage.EXPLORING, 0),
    )
    children = tuple(
        Child(
            child_name("bench", i, stage, 0),
            launcher_for(spec, stage).kind,
            i,
            stage,
            Phase.SUCCEEDED,
            finished_at=T0,
        )
        for i in range(iterations + 1)
        for stage in (Stage.EXPLORING, Stage.FILTERING, Stage.CONSOLIDATING)
        if i < iterations or stage is Stage.EXPLORING
    )
    return RunView("bench", "ns", "uid", 1, spec, status), Observed(children)


def rate(work: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    run, observed = run_with_history(args.iterations)
    decided = plan(run, observed, T0)
    assert decided.actions, "the benchmark run must lead to a decision"
    raw_status = run.status.to_api()
    ours = rate(lambda: plan(run, observed, T0), args.seconds)
    baseline = rate(lambda: copy.deepcopy(raw_status), args.seconds)
    print(f"history: {args.iterations} iterations, {len(observed.children)} children")
    print(f"plan():                 {ours:10.0f} decisions/s")
    print(f"deepcopy(status) base:  {baseline:10.0f} copies/s")
    print(f"ratio ours/baseline:    {ours / baseline:10.3f}")


if __name__ == "__main__":
    main()

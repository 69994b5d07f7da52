"""The replication's runs: RLoop, vanilla DAPO and three ablations for each seed.

    rloop            RLoop as the paper runs it, scaled down (fidelity_task.Budget)
    vanilla          one DAPO run of as many RL steps, evaluated after each window
    rft-from-rl      RLoop whose RFT fine-tunes the RL end point, not the iteration's start
    threshold-1      RLoop keeping the correct rollouts of every prompt not always solved
                     (hard threshold 1.0) instead of those below 0.1
    vanilla-updates  vanilla DAPO given as many optimizer updates as that seed's RLoop run
                     took in RL and RFT together: the RFT updates as extra RL steps, spread
                     over its windows

Every arm of a seed copies that seed's base evaluation (made once); vanilla-updates
starts when that seed's RLoop run is done (it needs its update count).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from fidelity_jobs import Job, Work, fixed
from fidelity_runs import Arm, rft_updates, rl_updates, run_arm, run_phase, run_view
from fidelity_task import Budget, run_document
from rloop_operator.lifecycle import Stage

RLOOP = Arm("rloop", "rloop", "RLoop")
VANILLA = Arm("vanilla", "vanilla", "vanilla")
ABLATIONS = (
    Arm("rft-from-rl", "rloop", "RFT from the RL end point", rft_from_rl=True),
    Arm("threshold-1", "rloop", "hard threshold 1.0", hard_threshold=1.0),
    Arm("vanilla-updates", "vanilla", "vanilla, RLoop's updates", matches_rloop_updates=True),
)
ARMS = (RLOOP, VANILLA, *ABLATIONS)


def run_name(arm: Arm, seed: int) -> str:
    return f"{arm.name}-s{seed}"


def base_name(seed: int) -> str:
    return f"base-s{seed}"


def arm_document(
    workdir: Path, arm: Arm, seed: int, budget: Budget, steps: int | None = None
) -> dict[str, object]:
    threshold = arm.hard_threshold or budget.hard_threshold
    arm_budget = replace(budget, hard_threshold=threshold)
    return run_document(workdir, run_name(arm, seed), arm.mode, seed, arm_budget, steps)


def evaluate_base(workdir: Path, seed: int, budget: Budget, say: Callable[[str], None]) -> None:
    """The base policy's evaluation for every arm of the seed."""
    run = run_view(run_document(workdir, base_name(seed), "rloop", seed, budget))
    run_phase(run, 0, Stage.EVALUATING_BASE, RLOOP)
    say(f"seed {seed}: base policy evaluated")


def run_one(
    workdir: Path,
    arm: Arm,
    seed: int,
    budget: Budget,
    steps: int | None,
    say: Callable[[str], None],
) -> dict[str, int]:
    """One arm of one seed; the optimizer updates it took in RL and in RFT."""
    run = run_view(arm_document(workdir, arm, seed, budget, steps))
    base = run_view(run_document(workdir, base_name(seed), "rloop", seed, budget))
    run_arm(run, arm, base, say)
    return {"rl_updates": rl_updates(run), "rft_updates": rft_updates(run)}


def matched_steps(budget: Budget, rloop_updates: dict[str, int]) -> int:
    """RL steps a window of vanilla-updates takes: the budget's plus RLoop's RFT updates
    turned into RL steps (updates_per_step each), spread evenly over the windows."""
    extra_steps = math.ceil(rloop_updates["rft_updates"] / budget.updates_per_step)
    return budget.steps + math.ceil(extra_steps / budget.iterations)


def jobs(workdir: Path, seeds: list[int], budget: Budget) -> list[Job]:
    """Every run of every seed: the base evaluations first, then seed by seed."""
    out = [Job(base_name(s), fixed(partial(evaluate_base, workdir, s, budget))) for s in seeds]
    for seed in seeds:
        for arm in ARMS:
            if arm.matches_rloop_updates:
                rloop = run_name(RLOOP, seed)
                make = partial(_matched_work, workdir, arm, seed, budget, rloop)
                out.append(Job(run_name(arm, seed), make, (base_name(seed), rloop)))
            else:
                work = partial(run_one, workdir, arm, seed, budget, None)
                out.append(Job(run_name(arm, seed), fixed(work), (base_name(seed),)))
    return out


def _matched_work(
    workdir: Path, arm: Arm, seed: int, budget: Budget, rloop: str, results: Mapping[str, Any]
) -> Work:
    """vanilla-updates' run, once the seed's RLoop run says how many updates it took."""
    return partial(run_one, workdir, arm, seed, budget, matched_steps(budget, results[rloop]))

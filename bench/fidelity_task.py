"""The replication's task, data and run settings (the protocol of bench/fidelity.md).

Task: scratchpad_sums.py's sums of single-digit terms, added in any order (many correct
solutions), on the demo's warm-started tiny model. Three sets of prompts:

    train     TRAIN_PROBLEMS three-term sums: the only prompts RL and RFT ever see
    in_dist   HELDOUT_PROBLEMS other three-term sums (like AIME to DAPO-17k in the paper:
              the train distribution, not the train prompts)
    out_dist  HELDOUT_PROBLEMS five-term sums: one term more than any warm-start or RL
              example (length generalisation; the base policy solves few, pass@32 has room)

Both held-out sets are evaluated with SAMPLES samples per problem (avg@32, pass@1, 8,
16, 32). Every arm of a seed runs with `spec.seed` = the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rloop_trainer import scratchpad_sums, store, toy

IN_DIST, OUT_DIST = "in_dist", "out_dist"
HELDOUT_PROBLEMS = 256
SAMPLES = 32
PASS_AT = [1, 8, 16, 32]
OUT_DIST_TERMS = 5
WARM_START_STEPS = 500  # the demo's base policy (demo_assets.WARM_START_STEPS)


@dataclass(frozen=True)
class Budget:
    """What the protocol fixes besides the task: the RL budget and its settings."""

    train_problems: int = 128
    iterations: int = 3
    steps: int = 20  # RL steps per iteration (vanilla: per evaluated window)
    prompts_per_step: int = 8
    updates_per_step: int = 2
    lr: float = 3e-4
    rft_lr: float = 3e-4
    hard_threshold: float = 0.1


def build_assets(directory: Path, budget: Budget) -> None:
    """The base policy and the three prompt sets under `directory` (done once)."""
    uri = f"file://{directory.resolve()}"
    recipe: dict[str, object] = {
        "task": "scratchpad_sums",
        "warm_start_steps": WARM_START_STEPS,
        "train_problems": budget.train_problems,
        "heldout_problems": HELDOUT_PROBLEMS,
        "out_dist_terms": OUT_DIST_TERMS,
    }
    if store.read_marker(uri) == recipe:
        return
    scratchpad_sums.build_policy(directory / "policy", WARM_START_STEPS, seed=0)
    three_terms = scratchpad_sums.make_problems(
        "train", budget.train_problems + HELDOUT_PROBLEMS, seed=0
    )
    toy.write_prompts(three_terms[: budget.train_problems], f"{uri}/train.parquet")
    in_dist = [
        replace(problem, id=f"in-{index:05d}")
        for index, problem in enumerate(three_terms[budget.train_problems :])
    ]
    toy.write_prompts(in_dist, f"{uri}/{IN_DIST}.parquet")
    out_dist = scratchpad_sums.make_problems(
        "heldout", HELDOUT_PROBLEMS, seed=1, terms_per_problem=OUT_DIST_TERMS
    )
    toy.write_prompts(out_dist, f"{uri}/{OUT_DIST}.parquet")
    store.write_marker(uri, recipe)


def run_document(
    workdir: Path, name: str, mode: str, seed: int, budget: Budget, steps: int | None = None
) -> dict[str, Any]:
    """The RLoopRun of one arm of one seed; `steps` overrides the steps per iteration."""
    root = f"file://{workdir.resolve()}"
    assets = f"{root}/assets"
    validation = [
        {"name": name_, "uri": f"{assets}/{name_}.parquet", "samples": SAMPLES, "passAt": PASS_AT}
        for name_ in (IN_DIST, OUT_DIST)
    ]
    steps_per_iteration = steps or budget.steps
    return {
        "apiVersion": "rloop.io/v1alpha1",
        "kind": "RLoopRun",
        "metadata": {"name": name},
        "spec": {
            "model": {"base": f"{assets}/policy"},
            "data": {"train": f"{assets}/train.parquet", "validation": validation},
            "iterations": budget.iterations,
            "mode": mode,
            "seed": seed,
            "dapo": {"steps": steps_per_iteration, "groupSize": 16,
                     "promptsPerStep": budget.prompts_per_step, "maxPromptTokens": 32,
                     "maxResponseTokens": 32, "overlongBuffer": 4, "lr": budget.lr,
                     "microBatch": 64, "updatesPerStep": budget.updates_per_step,
                     "checkpointEvery": steps_per_iteration, "engine": "hf"},
            "filter": {"hardThreshold": budget.hard_threshold},
            "rft": {"lr": budget.rft_lr, "microBatch": 64, "batchSize": 16, "maxSeqTokens": 64},
            "eval": {"maxResponseTokens": 32},
            "resources": {"gpusPerNode": 0, "cpu": "1", "memory": "4Gi", "shmSize": "1Gi"},
            "storage": {"uri": f"{root}/store"},
            "maxRetries": 1,
        },
    }  # fmt: skip

"""`python -m rloop_trainer.demo_assets DIR`: the tiny model and data `make demo` runs on.

The task is scratchpad_sums.py's: sums whose terms may be added in any order. Writes
DIR/policy (the warm-started tiny model with its trained tokenizer), DIR/train.parquet
(three terms), DIR/heldout.parquet (four terms: harder), then DIR/_SUCCESS with the
recipe. Running it again on a DIR finished with the same recipe does nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from rloop_trainer import scratchpad_sums, store, toy

TRAIN_PROBLEMS = 64
HELDOUT_PROBLEMS = 32
# Base policy at 500 steps: train avg@8 about 0.3, held-out about 0.1 (see the README).
WARM_START_STEPS = 500


def build_demo_assets(directory: Path, warm_start_steps: int, seed: int) -> None:
    uri = f"file://{directory.resolve()}"
    recipe: dict[str, object] = {
        "task": "scratchpad_sums",
        "warm_start_steps": warm_start_steps,
        "seed": seed,
    }
    # Assets built by another recipe (an older demo's task) are rebuilt, not reused.
    if store.read_marker(uri) == recipe:
        return
    scratchpad_sums.build_policy(directory / "policy", warm_start_steps, seed)
    train = scratchpad_sums.make_problems("train", TRAIN_PROBLEMS, seed)
    toy.write_prompts(train, f"{uri}/train.parquet")
    heldout = scratchpad_sums.make_problems("heldout", HELDOUT_PROBLEMS, seed + 1)
    toy.write_prompts(heldout, f"{uri}/heldout.parquet")
    store.write_marker(uri, recipe)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rloop_trainer.demo_assets", description=__doc__
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--warm-start-steps", type=int, default=WARM_START_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # The model is tiny: one thread is as fast as two, and far faster on a busy machine.
    torch.set_num_threads(1)
    build_demo_assets(args.directory, args.warm_start_steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

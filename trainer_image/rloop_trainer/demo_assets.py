"""`python -m rloop_trainer.demo_assets DIR`: the tiny model and toy data `make demo` runs on.

Writes DIR/policy (a warm-started tiny model with its trained tokenizer),
DIR/train.parquet and DIR/heldout.parquet (harder: three operands), then
DIR/_SUCCESS. Running it again on a finished DIR does nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rloop_trainer import store, toy

TRAIN_PROBLEMS = 256
HELDOUT_PROBLEMS = 32


def build_demo_assets(directory: Path, warm_start_steps: int, seed: int) -> None:
    uri = f"file://{directory.resolve()}"
    if store.read_marker(uri) is not None:
        return
    toy.build_policy(directory / "policy", warm_start_steps=warm_start_steps, seed=seed)
    toy.write_prompts(toy.make_problems("train", TRAIN_PROBLEMS, seed), f"{uri}/train.parquet")
    heldout = toy.make_problems("heldout", HELDOUT_PROBLEMS, seed + 1)
    toy.write_prompts(heldout, f"{uri}/heldout.parquet")
    store.write_marker(uri, {"warm_start_steps": warm_start_steps, "seed": seed})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rloop_trainer.demo_assets", description=__doc__
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--warm-start-steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build_demo_assets(args.directory, args.warm_start_steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

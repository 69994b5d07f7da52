"""DAPO on the demo's toy task, then avg@8 on its train and held-out splits: the accuracy
behind the "before/after" notes in RESULTS.md (accuracy only; nothing here is timed).

    python bench/toy_dapo.py train OUT --seed 0 [--set '{"steps": 40, ...}']
    python bench/toy_dapo.py eval OUT/rl/policy OUT/eval

`train` runs the DAPO phase from the demo's assets (`rloop_trainer.demo_assets`, built
once under --assets) with the demo's settings, overridden by --set (DapoPhaseConfig keys).
`eval` grades the end point twice, on the committed answer
only (boxed-or-answer) and on the whole response (any), and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEMO_SETTINGS: dict[str, Any] = {  # examples/local-run.yaml's dapo section
    "steps": 40,
    "group_size": 16,
    "prompts_per_step": 4,
    "max_prompt_tokens": 32,
    "max_response_tokens": 24,
    "overlong_buffer": 4,
    "updates_per_step": 2,
    "checkpoint_every": 1000,
    "engine": "hf",
}


def train(output: Path, assets: Path, seed: int, overrides: dict[str, Any]) -> None:
    from rloop_trainer import demo_assets, toy
    from rloop_trainer.dapo import run_dapo_phase

    demo_assets.build_demo_assets(assets, warm_start_steps=60, seed=0)
    settings = DEMO_SETTINGS | {"lr": 1e-4, "micro_batch": 16, "seed": seed} | overrides
    settings.setdefault("policy_uri", str(assets / "policy"))
    config = toy.dapo_config(
        str(output / "rl"), train_data_uri=str(assets / "train.parquet"), **settings
    )
    run_dapo_phase(config)


def evaluate(policy: Path, output: Path, assets: Path) -> dict[str, dict[str, float]]:
    from rloop_contract.sections import ValidationSet
    from rloop_trainer.config import EvalPhaseConfig
    from rloop_trainer.evaluate import run_eval_phase

    splits = [
        ValidationSet(name=name, uri=str(assets / f"{name}.parquet"), samples=8, pass_at=[1, 8])
        for name in ("train", "heldout")
    ]
    accuracy = {}
    for answer_format in ("boxed-or-answer", "any"):
        config = EvalPhaseConfig(
            policy_uri=str(policy),
            report_uri=str(output / answer_format / "report.json"),
            output_uri=str(output / answer_format),
            validation=splits,
            max_prompt_tokens=32,
            max_response_tokens=24,
            reward={"format": answer_format},
            engine="hf",
        )
        sets = run_eval_phase(config)["sets"]
        assert isinstance(sets, dict)
        accuracy[answer_format] = {name: round(s["avg@n"], 4) for name, s in sets.items()}
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["train", "eval"])
    parser.add_argument("paths", type=Path, nargs="+")
    parser.add_argument("--assets", type=Path, default=Path("/tmp/rloop-bench/toy-assets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", type=json.loads, default={}, dest="overrides")
    args = parser.parse_args()
    if args.command == "train":
        train(args.paths[0], args.assets, args.seed, args.overrides)
    else:
        print(json.dumps(evaluate(args.paths[0], args.paths[1], args.assets)))


if __name__ == "__main__":  # the verifier's worker processes re-import this module
    main()

"""Cost of the Appendix A similarity matrix against the evaluation that made its samples,
and against a plain loop (policy_comparison.bigram_similarity_matrix).

    python bench/similarity.py WORKDIR [--problems 512] [--samples 32] [--policies 4]

Evaluates the demo's base policy (rloop_trainer.demo_assets) `--policies` times on
`--problems` four-term sums with `--samples` samples each, with other sampling seeds (as
the run analysis has the base and each iteration's policy); times the first evaluation
(generation and grading, what an eval phase does before its analysis), then the
similarity matrix of all of them as the run analysis computes it, then Appendix A as a
plain loop over Python sets, and checks that the two agree. Prints the seconds and the
ratios: similarity / evaluation (below 1: the analysis costs less than the evaluation
it follows) and loop / similarity.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from rloop_contract.sections import ValidationSet
from rloop_trainer import demo_assets, scratchpad_sums, toy
from rloop_trainer.config import EvalPhaseConfig
from rloop_trainer.eval_samples import read_samples
from rloop_trainer.evaluate import run_eval_phase
from rloop_trainer.policy_comparison import bigram_similarity_matrix

Solutions = list[list[list[int]]]  # [problem][sample] token ids


def evaluate(workdir: Path, problems: int, samples: int, seed: int) -> Solutions:
    """One eval phase of the base policy, in this process; its samples' token ids."""
    uri = f"file://{workdir}"
    config = EvalPhaseConfig(
        policy_uri=f"{uri}/assets/policy",
        report_uri=f"{uri}/eval-{seed}/report.json",
        output_uri=f"{uri}/eval-{seed}",
        validation=[
            ValidationSet(name="sums", uri=f"{uri}/sums.parquet", samples=samples, pass_at=[1])
        ],
        max_prompt_tokens=32,
        max_response_tokens=32,
        engine="hf",
        seed=seed,
    )
    run_eval_phase(config)
    return [p.token_ids for p in read_samples(config.output_uri)]


def appendix_a_loop(policies: Sequence[Solutions]) -> list[list[float]]:
    """Appendix A as written: Python sets of bigrams, every pair of single solutions."""
    bigrams = [[[set(pairwise(r)) for r in problem] for problem in policy] for policy in policies]
    size = len(policies)
    matrix = [[0.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(i, size):
            per_problem = []
            for first, second in zip(bigrams[i], bigrams[j], strict=True):
                scores = [
                    len(a & b) / len(a | b)
                    for x, a in enumerate(first)
                    for y, b in enumerate(second)
                    if (i != j or x != y) and (a or b)
                ]
                if scores:
                    per_problem.append(sum(scores) / len(scores))
            matrix[i][j] = matrix[j][i] = sum(per_problem) / len(per_problem)
    return matrix


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--problems", type=int, default=512)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--policies", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the demo's phases run
    workdir = args.workdir.resolve()
    demo_assets.build_demo_assets(workdir / "assets", demo_assets.WARM_START_STEPS, seed=0)
    sums = scratchpad_sums.make_problems("heldout", args.problems, seed=3)
    toy.write_prompts(sums, f"file://{workdir}/sums.parquet")
    started = time.perf_counter()
    policies = [evaluate(workdir, args.problems, args.samples, seed=0)]
    evaluation = time.perf_counter() - started
    policies += [evaluate(workdir, args.problems, args.samples, s) for s in range(1, args.policies)]
    started = time.perf_counter()
    fast = bigram_similarity_matrix(policies)
    similarity = time.perf_counter() - started
    started = time.perf_counter()
    slow = appendix_a_loop(policies)
    loop = time.perf_counter() - started
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    print(f"{args.problems} problems x {args.samples} samples, {args.policies} policies")
    print(f"evaluation of one policy (generate + grade): {evaluation:8.2f} s")
    print(f"similarity matrix of {args.policies} policies:     {similarity:8.2f} s")
    print(f"Appendix A as a plain loop:                {loop:8.2f} s (same matrix)")
    print(f"ratio similarity / evaluation: {similarity / evaluation:.3f}")
    print(f"ratio loop / similarity:       {loop / similarity:.1f}")
    print(f"own similarity of each policy: {np.round(np.diag(fast), 3).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's task: sums added in any order, graded by math-verify on the boxed total."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch
from rloop_trainer import scratchpad_sums
from rloop_trainer.demo_assets import WARM_START_STEPS
from rloop_trainer.policy import load_policy
from rloop_trainer.reward import is_correct
from rloop_trainer.rollout.base import SamplingSpec
from rloop_trainer.rollout.hf import HFEngine
from safetensors.torch import load_file


def test_every_order_of_the_terms_is_a_distinct_correct_solution() -> None:
    terms = [3, 8, 5]

    solutions = [scratchpad_sums.solution_text(terms, o) for o in itertools.permutations(range(3))]

    assert solutions[0] == "3+8=11+5=16\\boxed{16}"
    assert len(set(solutions)) == 6
    assert all(is_correct(text, "16") for text in solutions)
    assert not is_correct("3+8=11+5=16\\boxed{15}", "16")


def test_train_has_three_terms_and_the_held_out_split_four() -> None:
    train = scratchpad_sums.make_problems("train", 40, seed=1)
    heldout = scratchpad_sums.make_problems("heldout", 40, seed=1)

    assert len({p.problem for p in train}) == 40 and len({p.problem for p in heldout}) == 40
    for split, problems in (("train", train), ("heldout", heldout)):
        for problem in problems:
            terms = problem.problem.removesuffix("=").split("+")
            assert len(terms) == scratchpad_sums.TERMS[split]
            assert str(sum(map(int, terms))) == problem.answer
    assert all(scratchpad_sums.reserved_for_heldout(p.problem) for p in heldout)


def test_a_split_can_have_another_number_of_terms() -> None:
    five = scratchpad_sums.make_problems("heldout", 30, seed=2, terms_per_problem=5)

    assert {len(p.problem.removesuffix("=").split("+")) for p in five} == {5}
    assert all(str(sum(map(int, p.problem[:-1].split("+")))) == p.answer for p in five)


def test_no_held_out_problem_is_ever_in_the_warm_start_data() -> None:
    heldout = {p.problem for p in scratchpad_sums.make_problems("heldout", 200, seed=0)}

    examples = scratchpad_sums.warm_start_examples(20_000, random.Random(0))

    assert not heldout & {problem for problem, _ in examples}
    assert {len(problem.split("+")) for problem, _ in examples} == {2, 3, 4}
    for problem, solution in examples[:50]:
        assert is_correct(solution, str(sum(map(int, problem[:-1].split("+")))))


def test_the_warm_start_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    first = scratchpad_sums.build_policy(tmp_path / "a", warm_start_steps=3, seed=4)
    second = scratchpad_sums.build_policy(tmp_path / "b", warm_start_steps=3, seed=4)

    weights = [load_file(d / "model.safetensors") for d in (first, second)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def base_accuracy(policy: Path, split: str) -> tuple[float, list[set[str]]]:
    """avg@8 of the policy on 32 problems, and each problem's distinct correct responses."""
    model, tokenizer = load_policy(str(policy), torch.float32, torch.device("cpu"))
    problems = scratchpad_sums.make_problems(split, 32, seed=7)  # type: ignore[arg-type]
    completions = HFEngine(model, tokenizer).generate(
        [tokenizer.encode(p.problem) for p in problems], SamplingSpec(8, 1.0, 1.0, 32, 0)
    )
    verdicts = [
        [(c.text, is_correct(c.text, p.answer)) for c in samples]
        for p, samples in zip(problems, completions, strict=True)
    ]
    hits = sum(ok for samples in verdicts for _, ok in samples)
    correct = [{text for text, ok in samples if ok} for samples in verdicts]
    return hits / (8 * len(problems)), correct


@pytest.mark.slow
def test_the_demo_base_policy_solves_some_problems_of_each_split_in_several_ways(
    tmp_path: Path,
) -> None:
    policy = scratchpad_sums.build_policy(tmp_path, WARM_START_STEPS, seed=0)

    train, train_solutions = base_accuracy(policy, "train")
    heldout, _ = base_accuracy(policy, "heldout")

    # measured: train about 0.3, held-out about 0.1
    assert 0.15 < train < 0.6, train
    assert 0.03 < heldout < train, heldout
    assert max(len(solutions) for solutions in train_solutions) >= 2, "no diversity"

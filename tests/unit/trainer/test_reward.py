"""Rewards: math-verify verdicts (never a crash or a hang) and DAPO's overlong shaping."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rloop_trainer.reward import Verifier, last_boxed, overlong_penalty, shaped_reward


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    pool = Verifier(workers=2, timeout_s=3.0)
    yield pool
    pool.close()


def test_the_answer_is_the_last_boxed_expression_with_nested_braces() -> None:
    assert last_boxed("try \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_equivalent_answers_are_correct_and_others_wrong(verifier: Verifier) -> None:
    responses = [
        "so \\boxed{4}",
        "\\boxed{\\frac{8}{2}}",
        "\\boxed{5}",
        "\\boxed{3} no, \\boxed{4}",
    ]

    assert verifier.score(responses, ["4"] * 4) == [True, True, False, True]


def test_garbage_and_empty_answers_are_wrong_not_errors(verifier: Verifier) -> None:
    assert verifier.score(["\\boxed{", "", "}}}{{{", "\\boxed{x^}"], ["4"] * 4) == [False] * 4


def test_an_answer_that_makes_math_verify_hang_is_wrong_and_the_pool_goes_on(
    verifier: Verifier,
) -> None:
    # Comparing 9^(9^9) runs for math-verify's own 5 s timeout: longer than the pool's 3 s.
    started = time.monotonic()
    verdicts = verifier.score(["\\boxed{9^{9^{9}}}", "\\boxed{3}"], ["3", "3"])

    assert verdicts == [False, True]
    assert time.monotonic() - started < 30
    assert verifier.score(["\\boxed{7}"], ["7"]) == [True]


def test_mismatched_lengths_are_rejected(verifier: Verifier) -> None:
    with pytest.raises(ValueError, match="2 responses but 1 ground truths"):
        verifier.score(["a", "b"], ["1"])


def _reference_penalty(length: int, max_len: int, buffer: int, penalty: float) -> float:
    if buffer == 0 or length <= max_len - buffer:
        return 0.0
    return -(length - (max_len - buffer)) / buffer * penalty


@pytest.mark.parametrize("buffer", [0, 1, 4, 10])
def test_overlong_penalty_matches_the_dapo_formula_at_every_length(buffer: int) -> None:
    max_len = 20
    for length in range(max_len + 1):
        expected = _reference_penalty(length, max_len, buffer, penalty=0.5)
        assert overlong_penalty(length, max_len, buffer, 0.5) == pytest.approx(expected)


def test_shaped_reward_is_plus_or_minus_one_plus_the_penalty() -> None:
    assert shaped_reward(True, 5, 20, 4, 1.0) == 1.0
    assert shaped_reward(False, 5, 20, 4, 1.0) == -1.0
    assert shaped_reward(True, 20, 20, 4, 1.0) == pytest.approx(0.0)  # correct, yet reward 0
    assert shaped_reward(False, 18, 20, 4, 1.0) == pytest.approx(-1.5)

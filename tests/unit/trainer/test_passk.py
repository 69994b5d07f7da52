"""pass@k and avg@n against hand-computed values and brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
from rloop_trainer.passk import ProblemOutcome, average_at_n, mean_pass_at_k, pass_at_k


def brute_force_pass_at_k(samples: int, correct: int, k: int) -> float:
    """Fraction of all k-subsets of the samples that hold at least one correct one."""
    verdicts = [True] * correct + [False] * (samples - correct)
    subsets = list(itertools.combinations(range(samples), k))
    return sum(any(verdicts[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize(
    ("samples", "correct", "k", "expected"),
    [
        (4, 1, 1, 1 / 4),  # one right of four, one draw
        (4, 1, 2, 1 - 3 / 6),  # C(3,2)/C(4,2) subsets miss it
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # C(7,5)/C(10,5)
        (8, 0, 8, 0.0),
        (8, 8, 1, 1.0),
        (6, 2, 5, 1.0),  # fewer wrong samples than k: every 5-subset holds a right one
    ],
)
def test_pass_at_k_matches_hand_computed_closed_form(
    samples: int, correct: int, k: int, expected: float
) -> None:
    assert pass_at_k(ProblemOutcome(samples, correct), k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("samples", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration_of_all_k_subsets(samples: int) -> None:
    for correct in range(samples + 1):
        for k in range(1, samples + 1):
            assert pass_at_k(ProblemOutcome(samples, correct), k) == pytest.approx(
                brute_force_pass_at_k(samples, correct, k), abs=1e-12
            )


def test_pass_at_k_stays_finite_where_the_binomials_overflow_floats() -> None:
    samples, correct, k = 2000, 3, 1000
    exact = 1 - math.comb(samples - correct, k) / math.comb(samples, k)
    assert pass_at_k(ProblemOutcome(samples, correct), k) == pytest.approx(exact, rel=1e-9)


def test_pass_at_1_is_avg_at_n() -> None:
    outcomes = [ProblemOutcome(16, 3), ProblemOutcome(16, 0), ProblemOutcome(16, 16)]
    assert mean_pass_at_k(outcomes, 1) == pytest.approx(average_at_n(outcomes))
    assert average_at_n(outcomes) == pytest.approx((3 / 16 + 0 + 1) / 3)


def test_k_outside_one_to_samples_is_refused_with_the_range() -> None:
    with pytest.raises(ValueError, match=r"\[1, samples=4\]"):
        pass_at_k(ProblemOutcome(4, 1), 5)


def test_more_correct_than_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="correct <= samples"):
        ProblemOutcome(4, 5)

"""The paired bootstrap of A minus B over seeds and problems, against an exact enumeration
of every resample of tiny inputs (the slow obvious loop)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from rloop_operator.paired_bootstrap import (
    paired_interval,
    point_estimate,
    resampled_estimates,
)

# Two seeds: seed 0 on two problems, seed 1 on three (differences A - B per problem).
TINY = [[0.0, 1.0], [0.5, 0.5, 2.0]]


def exact_distribution(values: list[list[float]]) -> list[tuple[float, float]]:
    """(estimate, probability) of every two-level resample: each slot draws a seed with
    replacement, then that seed's problems with replacement; the estimate is the mean of
    the slots' problem means."""
    seeds = len(values)
    outcomes = []
    for drawn in itertools.product(range(seeds), repeat=seeds):
        per_slot = [list(itertools.product(values[s], repeat=len(values[s]))) for s in drawn]
        weight = 1 / seeds**seeds / np.prod([len(p) for p in per_slot])
        for picks in itertools.product(*per_slot):
            estimate = sum(sum(pick) / len(pick) for pick in picks) / seeds
            outcomes.append((estimate, weight))
    return outcomes


def test_the_estimate_is_the_mean_over_seeds_of_the_mean_over_problems() -> None:
    assert point_estimate(TINY) == pytest.approx(((0 + 1) / 2 + (0.5 + 0.5 + 2) / 3) / 2)


def test_resamples_follow_the_exact_two_level_bootstrap_distribution() -> None:
    exact = exact_distribution(TINY)
    mean = sum(e * w for e, w in exact)
    variance = sum((e - mean) ** 2 * w for e, w in exact)

    drawn = resampled_estimates(TINY, 40_000, np.random.default_rng(1))

    assert sum(w for _, w in exact) == pytest.approx(1.0)
    assert drawn.mean() == pytest.approx(mean, abs=0.01)
    assert drawn.var() == pytest.approx(variance, rel=0.05)
    for point in (0.4, 0.6, 0.8):
        below = sum(w for e, w in exact if e <= point)
        assert np.mean(drawn <= point) == pytest.approx(below, abs=0.01)


def test_one_seed_varies_only_its_problems() -> None:
    exact = exact_distribution([[0.0, 1.0, 1.0]])

    drawn = resampled_estimates([[0.0, 1.0, 1.0]], 20_000, np.random.default_rng(2))

    for value in {round(e, 6) for e, _ in exact}:
        probability = sum(w for e, w in exact if round(e, 6) == value)
        assert np.mean(np.isclose(drawn, value)) == pytest.approx(probability, abs=0.01)


def test_the_interval_holds_the_estimate_and_says_where_it_lies_against_zero() -> None:
    rng = random.Random(0)
    ahead = [[rng.gauss(0.05, 0.2) for _ in range(256)] for _ in range(5)]
    level = [[rng.gauss(0.0, 0.2) for _ in range(256)] for _ in range(5)]

    interval = paired_interval(ahead)

    assert interval.low < interval.estimate < interval.high
    assert interval.sign == 1 and interval.seeds == 5
    assert paired_interval([[-v for v in row] for row in ahead]).sign == -1
    assert paired_interval(level).sign == 0
    assert paired_interval(ahead) == interval  # seeded: the report is reproducible


def test_seeds_that_disagree_widen_the_interval_beyond_the_problems_alone() -> None:
    agreeing = [[0.02] * 128 + [0.08] * 128 for _ in range(5)]
    disagreeing = [[v + shift for v in agreeing[0]] for shift in (-0.1, -0.05, 0, 0.05, 0.1)]

    assert paired_interval(agreeing).half_width < 0.01
    assert paired_interval(disagreeing).half_width > 0.04


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        paired_interval([])
    with pytest.raises(ValueError, match="non-empty"):
        paired_interval([[0.1], []])

"""Learning, forgetting and similarity between policies, against slow obvious loops on
hand-made solved sets and responses."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from rloop_trainer.policy_comparison import (
    bigram_jaccard_matrix,
    forgetting_matrix,
    forgetting_rate,
    learning_matrix,
    response_bigrams,
    solved,
)

# Correct samples out of 4, for three policies (rows) on five problems (columns).
CORRECT = [
    [0, 1, 4, 0, 2],
    [1, 1, 0, 0, 3],
    [0, 0, 2, 0, 4],
]


def slow_transfer(solved_sets: list[set[int]], problems: int, learned: bool) -> list[list[float]]:
    """Count problem by problem: unsolved by i and solved by j (learned), or the reverse."""
    matrix = []
    for first in solved_sets:
        row = []
        for second in solved_sets:
            count = 0
            for problem in range(problems):
                if learned and problem not in first and problem in second:
                    count += 1
                if not learned and problem in first and problem not in second:
                    count += 1
            row.append(count / problems)
        matrix.append(row)
    return matrix


def slow_jaccard(responses_by_policy: list[list[list[list[int]]]]) -> list[list[float]]:
    """Python sets of (token, next token) pairs per problem, Jaccard, mean over problems."""

    def bigrams(responses: list[list[int]]) -> set[tuple[int, int]]:
        return {(r[k], r[k + 1]) for r in responses for k in range(len(r) - 1)}

    size = len(responses_by_policy)
    matrix = [[math.nan] * size for _ in range(size)]
    for i in range(size):
        for j in range(size):
            scores = []
            for a, b in zip(responses_by_policy[i], responses_by_policy[j], strict=True):
                first, second = bigrams(a), bigrams(b)
                if first or second:
                    scores.append(len(first & second) / len(first | second))
            if scores:
                matrix[i][j] = sum(scores) / len(scores)
    return matrix


def test_a_policy_solves_a_problem_when_any_sample_is_correct() -> None:
    assert solved(CORRECT).tolist() == [
        [False, True, True, False, True],
        [True, True, False, False, True],
        [False, False, True, False, True],
    ]


def test_learning_and_forgetting_count_problems_gained_and_lost_between_policies() -> None:
    solved_by = solved(CORRECT)
    sets = [{p for p in range(5) if row[p]} for row in solved_by]

    learning = learning_matrix(solved_by)
    forgetting = forgetting_matrix(solved_by)

    np.testing.assert_allclose(learning, slow_transfer(sets, 5, learned=True))
    np.testing.assert_allclose(forgetting, slow_transfer(sets, 5, learned=False))
    # policy 0 -> 1: gains problem 0, loses problem 2; policy 0 -> 2 gains nothing, loses 1
    assert learning[0, 1] == pytest.approx(1 / 5) and forgetting[0, 1] == pytest.approx(1 / 5)
    assert learning[0, 2] == 0 and forgetting[0, 2] == pytest.approx(1 / 5)
    assert learning[2, 0] == pytest.approx(1 / 5) and forgetting[2, 0] == 0
    assert np.diag(learning).tolist() == [0, 0, 0]


def test_learning_and_forgetting_match_the_loops_on_random_solved_sets() -> None:
    rng = random.Random(0)
    for _ in range(20):
        policies, problems = rng.randint(1, 5), rng.randint(1, 30)
        counts = [[rng.choice([0, 0, 1, 3]) for _ in range(problems)] for _ in range(policies)]
        sets = [{p for p in range(problems) if row[p]} for row in counts]
        solved_by = solved(counts)
        learned = slow_transfer(sets, problems, learned=True)
        np.testing.assert_allclose(learning_matrix(solved_by), learned)
        forgotten = slow_transfer(sets, problems, learned=False)
        np.testing.assert_allclose(forgetting_matrix(solved_by), forgotten)


def test_forgetting_rate_averages_what_later_policies_lose_of_earlier_ones() -> None:
    forgetting = np.array([[0.0, 0.2, 0.4], [0.9, 0.0, 0.1], [0.9, 0.9, 0.0]])

    assert forgetting_rate(forgetting) == pytest.approx((0.2 + 0.4 + 0.1) / 3)
    assert forgetting_rate(np.zeros((1, 1))) is None


def test_bigrams_never_span_two_responses() -> None:
    codes = response_bigrams([[1, 2, 3], [4], [3, 4]])

    pairs = {(int(c) >> 32, int(c) & 0xFFFFFFFF) for c in codes}
    assert pairs == {(1, 2), (2, 3), (3, 4)}
    assert response_bigrams([]).size == 0


def test_bigram_jaccard_of_hand_made_responses() -> None:
    same_order = [[[1, 2, 3]], [[7, 8]]]
    other_order = [[[3, 2, 1]], [[7, 8], [8, 9]]]
    silent = [[[5]], [[]]]  # no bigram on either problem

    similarity = bigram_jaccard_matrix([same_order, other_order, silent])

    # problem 0: {12, 23} vs {32, 21} share nothing; problem 1: {78} vs {78, 89}: 1/2
    assert similarity[0, 1] == pytest.approx((0 + 1 / 2) / 2)
    assert similarity[0, 0] == 1.0 and similarity[1, 0] == similarity[0, 1]
    assert similarity[0, 2] == 0.0
    assert math.isnan(similarity[2, 2])


def test_bigram_jaccard_matches_the_loop_on_random_responses() -> None:
    rng = random.Random(1)
    samples = [
        [
            [[rng.randint(0, 6) for _ in range(rng.randint(0, 8))] for _ in range(3)]
            for _ in range(4)
        ]
        for _ in range(3)
    ]

    fast = bigram_jaccard_matrix(samples)

    np.testing.assert_allclose(fast, np.array(slow_jaccard(samples)), equal_nan=True)


def test_policies_with_different_problem_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="same problems"):
        bigram_jaccard_matrix([[[[1, 2]]], [[[1, 2]], [[3, 4]]]])

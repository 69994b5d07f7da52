"""Learning, forgetting (§3.1) and similarity (Appendix A) between policies, against slow
obvious loops written from the paper's text, on hand-made and on random inputs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from rloop_trainer import policy_comparison
from rloop_trainer.policy_comparison import (
    bigram_similarity_matrix,
    forgetting_matrix,
    forgetting_rate,
    learning_matrix,
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


def bigram_set(response: list[int]) -> set[tuple[int, int]]:
    return {(response[k], response[k + 1]) for k in range(len(response) - 1)}


def slow_appendix_a(samples: list[list[list[list[int]]]]) -> list[list[float]]:
    """Appendix A read literally: per prompt, the Jaccard index J(s_ia, s_jb) of the
    bigram sets of every pair of single solutions, one of policy i and one of policy j;
    their mean; then the mean over prompts. A solution is never paired with itself
    (a != b when i == j); a pair of two bigram-less solutions has no index."""
    size = len(samples)
    matrix = [[math.nan] * size for _ in range(size)]
    for i in range(size):
        for j in range(size):
            per_prompt = []
            for prompt in range(len(samples[i])):
                scores = []
                for a, first in enumerate(samples[i][prompt]):
                    for b, second in enumerate(samples[j][prompt]):
                        if i == j and a == b:
                            continue
                        g_a, g_b = bigram_set(first), bigram_set(second)
                        if g_a or g_b:
                            scores.append(len(g_a & g_b) / len(g_a | g_b))
                if scores:
                    per_prompt.append(sum(scores) / len(scores))
            if per_prompt:
                matrix[i][j] = sum(per_prompt) / len(per_prompt)
    return matrix


def slow_union_set(samples: list[list[list[list[int]]]], i: int, j: int) -> float:
    """The measure this module had before: Jaccard of the union of ALL of a policy's
    bigrams on a prompt, mean over prompts. Kept here only to show the two disagree."""
    scores = []
    for first, second in zip(samples[i], samples[j], strict=True):
        g_i = set().union(*map(bigram_set, first))
        g_j = set().union(*map(bigram_set, second))
        scores.append(len(g_i & g_j) / len(g_i | g_j))
    return sum(scores) / len(scores)


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


def test_similarity_of_hand_made_solutions_per_appendix_a() -> None:
    # One prompt. Policy 0: 1 2 3 and 1 2 4 -> {12, 23} and {12, 24}. Policy 1: 1 2 3 twice.
    diverse = [[[1, 2, 3], [1, 2, 4]]]
    narrow = [[[1, 2, 3], [1, 2, 3]]]

    similarity = bigram_similarity_matrix([diverse, narrow])

    # own pairs of policy 0: (123, 124) and (124, 123): 1/3 each; policy 1's: 1 each
    assert similarity[0, 0] == pytest.approx(1 / 3)
    assert similarity[1, 1] == pytest.approx(1.0)
    # across: 123-123 1, 123-123 1, 124-123 1/3, 124-123 1/3 -> mean 2/3
    assert similarity[0, 1] == pytest.approx(2 / 3) and similarity[1, 0] == similarity[0, 1]


def test_similarity_averages_per_prompt_then_over_prompts() -> None:
    # Prompt 0 has 2 solutions a policy, prompt 1 has 3: each prompt weighs the same.
    first = [[[1, 2], [1, 2]], [[5, 6], [6, 7], [7, 8]]]
    second = [[[1, 2], [3, 4]], [[5, 6], [5, 6], [5, 6]]]

    similarity = bigram_similarity_matrix([first, second])

    # prompt 0: J = 1, 0, 1, 0 -> 1/2; prompt 1: 5 6 matches only the first of three -> 1/3
    assert similarity[0, 1] == pytest.approx((1 / 2 + 1 / 3) / 2)
    # own: prompt 0 first: (12, 12) -> 1; prompt 1: all distinct -> 0
    assert similarity[0, 0] == pytest.approx((1 + 0) / 2)


def test_solutions_without_bigrams_are_left_out_only_against_each_other() -> None:
    silent = [[[5], []]]  # one-token and empty solutions: no bigram
    talking = [[[5, 6], [5]]]

    similarity = bigram_similarity_matrix([silent, talking])

    assert math.isnan(similarity[0, 0])  # its only pairs are bigram-less with bigram-less
    # against talking: (5)-(5 6) 0, (5)-(5) none, ()-(5 6) 0, ()-(5) none -> 0
    assert similarity[0, 1] == 0.0
    assert similarity[1, 1] == 0.0  # (5 6) vs (5): {56} vs {} -> 0


def test_similarity_matches_appendix_a_on_random_solutions() -> None:
    rng = random.Random(1)
    for _ in range(60):
        policies, prompts = rng.randint(1, 4), rng.randint(0, 6)
        samples = [
            [
                [
                    [rng.randint(0, 5) for _ in range(rng.randint(0, 7))]
                    for _ in range(rng.randint(0, 4))
                ]
                for _ in range(prompts)
            ]
            for _ in range(policies)
        ]

        fast = bigram_similarity_matrix(samples)

        np.testing.assert_allclose(fast, np.array(slow_appendix_a(samples)), equal_nan=True)


def test_a_policy_against_itself_is_not_one_unless_its_solutions_are_alike() -> None:
    # The union-set measure gives every policy 1 against itself, and two policies with
    # diverse solutions a larger overlap than any pair of single solutions has.
    rng = random.Random(2)
    samples = [
        [[[rng.randint(0, 40) for _ in range(12)] for _ in range(8)] for _ in range(20)]
        for _ in range(2)
    ]

    similarity = bigram_similarity_matrix(samples)

    assert slow_union_set(samples, 0, 0) == 1.0
    assert similarity[0, 0] == pytest.approx(slow_appendix_a(samples)[0][0])
    assert similarity[0, 0] < 0.1
    assert similarity[0, 1] < slow_union_set(samples, 0, 1) / 2


def test_many_prompts_in_several_chunks_and_batches_match_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(policy_comparison, "_BATCH_CELLS", 200)  # a few prompts a batch
    rng = random.Random(3)
    samples = [
        [[[rng.randint(0, 3) for _ in range(5)] for _ in range(3)] for _ in range(150)]
        for _ in range(2)
    ]

    np.testing.assert_allclose(bigram_similarity_matrix(samples), slow_appendix_a(samples))


def test_policies_with_different_problem_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="same problems"):
        bigram_similarity_matrix([[[[1, 2]]], [[[1, 2]], [[3, 4]]]])

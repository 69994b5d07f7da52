"""Rewards: the committed answer's math-verify verdict (never a crash or a hang), truncation,
and DAPO's overlong shaping."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rloop_trainer.reward import (
    Verifier,
    _Worker,
    gradable_answer,
    grade,
    last_boxed,
    overlong_penalty,
    shaped_reward,
)
from rloop_trainer.rollout.base import Completion
from rloop_trainer.rollout.groups import PromptTask, RewardShape, score_groups


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    pool = Verifier(workers=2, timeout_s=3.0)
    yield pool
    pool.close()


def test_the_answer_is_the_last_boxed_expression_with_nested_braces() -> None:
    assert last_boxed("try \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{unclosed") is None


HUGE = "blah " * 400_000  # 2 MB of rambling
# (response, gold, format, verdict): only the committed answer is ever graded.
GRADING = [
    ("so \\boxed{4}", "4", "boxed-or-answer", True),
    ("\\boxed{\\frac{8}{2}}", "4", "boxed-or-answer", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", "boxed-or-answer", True),
    ("\\boxed{5}", "4", "boxed-or-answer", False),
    ("\\boxed{3} no, \\boxed{4}", "4", "boxed-or-answer", True),
    ("\\boxed{4} no, \\boxed{3}", "4", "boxed-or-answer", False),
    ("Let x = 5. Then we compute many things and I give up.", "5", "boxed-or-answer", False),
    ("Try 5, then try 3.", "3", "boxed-or-answer", False),
    ("The answer is 5.", "5", "boxed-or-answer", False),
    ("Answer: 5", "5", "boxed-or-answer", True),
    ("**Answer:** $\\frac{1}{2}$.", "0.5", "boxed-or-answer", True),
    ("Answer: \\(2\\sqrt{3}\\)", "2\\sqrt3", "boxed-or-answer", True),
    ("Answer: 3\nso... Answer: 4\n", "4", "boxed-or-answer", True),
    ("Answer: 3\nso... Answer: 4\n", "3", "boxed-or-answer", False),
    ("\\boxed{4}\nAnswer: 5", "4", "boxed-or-answer", True),
    ("Answer: 4", "4", "boxed", False),
    ("\\boxed{4}", "4", "answer-line", False),
    ("\\boxed{4}\nAnswer: 5", "5", "answer-line", True),
    ("Try 5, then try 3.", "3", "any", True),  # base models: the last number counts
    ("", "4", "boxed-or-answer", False),
    ("\\boxed{}", "4", "boxed-or-answer", False),
    ("\\boxed{", "4", "boxed-or-answer", False),
    ("}}}{{{", "4", "any", False),
    ("\\boxed{x^}", "4", "boxed-or-answer", False),
    (HUGE + "\\boxed{7}", "7", "boxed-or-answer", True),
    (HUGE + "Answer: 7", "7", "boxed-or-answer", True),
    (HUGE, "7", "boxed-or-answer", False),
    ("\\boxed{" + "1+" * 1000 + "1}", "1001", "boxed-or-answer", False),  # no runaway answer
]


def test_only_the_committed_answer_is_graded(verifier: Verifier) -> None:
    answers = [gradable_answer(response, fmt) for response, _, fmt, _ in GRADING]

    verdicts = verifier.score(answers, [gold for _, gold, _, _ in GRADING])

    wrong = [row[:80] for row, verdict in zip(GRADING, verdicts, strict=True) if verdict != row[3]]
    assert wrong == []


def test_a_response_cut_at_the_token_limit_is_never_a_success() -> None:
    finished = Completion([1, 2], "\\boxed{2}", truncated=False)
    cut = Completion([1, 2], "\\boxed{2}", truncated=True)

    verdicts = grade([finished, cut, cut], ["2", "2", "3"], "boxed-or-answer")

    assert [(v.verified, v.correct) for v in verdicts] == [
        (True, True),
        (True, False),
        (False, False),
    ]


def test_a_truncated_rollout_is_rewarded_as_dapo_shapes_it_but_fails() -> None:
    task = PromptTask("p", "1+1=", [1], "2")
    completions = [
        [
            Completion([5] * 8, "\\boxed{2}", truncated=True),
            Completion([5] * 3, "\\boxed{2}", False),
        ]
    ]

    (group,) = score_groups([task], completions, 1, RewardShape("boxed-or-answer", 8, 4, 1.0))

    truncated, finished = group.rollouts
    assert (truncated.correct, truncated.reward) == (False, pytest.approx(0.0))  # +1, then -1
    assert (finished.correct, finished.reward) == (True, 1.0)


def test_an_answer_that_makes_math_verify_hang_is_wrong_and_the_pool_goes_on(
    verifier: Verifier,
) -> None:
    # Comparing 9^(9^9) runs for math-verify's own 5 s timeout: longer than the pool's 3 s.
    started = time.monotonic()
    verdicts = verifier.score(["\\boxed{9^{9^{9}}}", "\\boxed{3}"], ["3", "3"])

    assert verdicts == [False, True]
    assert time.monotonic() - started < 30
    assert verifier.score(["\\boxed{7}"], ["7"]) == [True]


def test_each_distinct_answer_is_checked_once(
    verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[tuple[str, str]] = []
    assign = _Worker.assign
    monkeypatch.setattr(
        _Worker, "assign", lambda self, i, a, g: (checked.append((a, g)), assign(self, i, a, g))
    )

    verdicts = verifier.score(
        ["\\boxed{7}", "\\boxed{7}", None, "\\boxed{8}", "\\boxed{7}"], ["7", "7", "7", "7", "8"]
    )

    assert verdicts == [True, True, False, False, False]
    assert sorted(checked) == [("\\boxed{7}", "7"), ("\\boxed{7}", "8"), ("\\boxed{8}", "7")]


def test_mismatched_lengths_are_rejected(verifier: Verifier) -> None:
    with pytest.raises(ValueError, match="2 answers but 1 ground truths"):
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

"""The eval report: avg@n and pass@k per validation set, from per-problem verdicts."""

from __future__ import annotations

import pytest
from rloop_trainer.evaluate import summarize_set


def test_summary_counts_correct_samples_per_problem() -> None:
    verdicts = [[True, False, False, False], [False] * 4, [True] * 4]

    summary = summarize_set(verdicts, pass_at=[1, 2, 4])

    assert summary["problems"] == 3
    assert summary["samples"] == 4
    assert summary["avg@n"] == pytest.approx((1 / 4 + 0 + 1) / 3)
    assert summary["pass@k"] == {
        "1": pytest.approx((1 / 4 + 0 + 1) / 3),
        "2": pytest.approx((1 / 2 + 0 + 1) / 3),  # 1 - C(3,2)/C(4,2) = 1/2
        "4": pytest.approx((1 + 0 + 1) / 3),
    }


def test_problems_with_unequal_sample_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="every problem needs the same number of samples"):
        summarize_set([[True, False], [True]], pass_at=[1])

"""The eval report: avg@n and pass@k per validation set, from per-problem verdicts; and the
run analysis the evaluation refreshes after it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError
from rloop_trainer.config import EvalPhaseConfig, RunAnalysisConfig
from rloop_trainer.evaluate import refresh_analysis, summarize_set


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


def test_a_failing_run_analysis_is_logged_and_leaves_the_evaluation_standing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    eval_uri = f"file://{tmp_path}/eval"
    config = RunAnalysisConfig(
        output_uri=f"file://{tmp_path}/a-file/analysis",
        evaluations=[{"label": "iter 1", "iteration": 1, "rl_steps": 2, "eval_uri": eval_uri}],
    )

    with caplog.at_level(logging.ERROR):
        refresh_analysis(config)

    assert f"run analysis under {config.output_uri} failed" in caplog.text


def test_the_analysis_must_list_this_evaluation_last() -> None:
    evaluations = [{"label": "iter 1", "iteration": 1, "rl_steps": 2, "eval_uri": "s3://b/e0"}]

    with pytest.raises(ValidationError, match="list this evaluation last"):
        EvalPhaseConfig(
            policy_uri="s3://b/p",
            report_uri="s3://b/e1/report.json",
            output_uri="s3://b/e1",
            validation=[{"name": "v", "uri": "s3://b/v"}],
            analysis={"output_uri": "s3://b/a", "evaluations": evaluations},
        )

"""Reports the filter and eval phases leave in the store, as the operator reads them."""

from __future__ import annotations

import json
from pathlib import Path

from rloop_operator.api import StorageSpec
from rloop_operator.reports import parse_eval_report, parse_filter_report, read_report


def test_filter_report_gives_the_counts_of_the_status() -> None:
    report = parse_filter_report(
        {"rollouts": 1024, "hard_prompts": 9, "kept_samples": 21, "prompts": 64}
    )
    assert (report.trajectories, report.hard_prompts, report.expert_samples) == (1024, 9, 21)


def test_eval_report_flattens_into_set_scoped_metrics() -> None:
    report = parse_eval_report({"policy_uri": "s3://b/p", "sets": {"aime24": {
        "avg@n": 0.25, "pass@k": {"8": 0.5, "32": 0.75}, "problems": 30, "samples": 32,
    }}})  # fmt: skip
    assert report.metrics == {"aime24/avg@32": 0.25, "aime24/pass@8": 0.5, "aime24/pass@32": 0.75}


def test_a_missing_report_is_an_error_value_not_an_exception(tmp_path: Path) -> None:
    storage = StorageSpec(uri=f"file://{tmp_path}")
    report = read_report(f"file://{tmp_path}/nope/report.json", True, storage, {})
    assert report.error is not None and "nope/report.json" in report.error


def test_a_report_on_a_file_store_is_read(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(
        json.dumps({"rollouts": 8, "hard_prompts": 1, "kept_samples": 2})
    )
    storage = StorageSpec(uri=f"file://{tmp_path}")
    report = read_report(f"file://{tmp_path}/report.json", True, storage, {})
    assert report.error is None and report.expert_samples == 2

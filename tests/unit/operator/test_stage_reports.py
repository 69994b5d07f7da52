"""Filter and eval reports, from pod termination messages or the store."""

from __future__ import annotations

import json
from pathlib import Path

from rloop_operator.spec_sections import StorageSpec
from rloop_operator.stage_reports import (
    parse_eval_report,
    parse_filter_report,
    read_report,
    report_from_messages,
)


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
    report = read_report(f"file://{tmp_path}/nope/report.json", parse_filter_report, storage, {})
    assert report.error is not None and "nope/report.json" in report.error


def test_a_report_on_a_file_store_is_read(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(
        json.dumps({"rollouts": 8, "hard_prompts": 1, "kept_samples": 2})
    )
    storage = StorageSpec(uri=f"file://{tmp_path}")
    report = read_report(f"file://{tmp_path}/report.json", parse_filter_report, storage, {})
    assert report.error is None and report.expert_samples == 2


def test_the_first_complete_report_among_the_termination_messages_is_used() -> None:
    messages = [
        "Traceback (most recent call last): ...",  # an earlier pod that crashed
        '{"rollouts": 8, "hard_prompts": 1}',  # not a whole filter report
        '{"rollouts": 8, "hard_prompts": 1, "kept_samples": 2}',
        '{"rollouts": 9, "hard_prompts": 1, "kept_samples": 3}',
    ]
    report = report_from_messages(messages, parse_filter_report)
    assert report is not None and report.expert_samples == 2


def test_an_eval_report_is_read_from_a_termination_message() -> None:
    message = json.dumps({"sets": {"v": {"avg@n": 0.5, "pass@k": {"4": 0.75}, "samples": 4}}})
    report = report_from_messages([message], parse_eval_report)
    assert report is not None and report.metrics == {"v/avg@4": 0.5, "v/pass@4": 0.75}


def test_without_a_usable_message_there_is_no_report() -> None:
    assert report_from_messages([], parse_filter_report) is None
    assert report_from_messages(["[1, 2]", "{}"], parse_eval_report) is None


def test_sets_left_out_of_a_termination_message_make_the_report_incomplete() -> None:
    message = json.dumps({
        "sets": {"aime": {"avg@n": 0.5, "pass@k": {"4": 0.75}, "samples": 4}},
        "omitted": ["math500", "minerva"],
    })  # fmt: skip
    report = report_from_messages([message], parse_eval_report)
    assert report is not None and report.metrics == {"aime/avg@4": 0.5, "aime/pass@4": 0.75}
    assert report.incomplete is not None and "math500, minerva" in report.incomplete

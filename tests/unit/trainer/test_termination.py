"""What a phase container leaves in its termination message: a filter or eval report,
or why it failed and whether a retry can succeed."""

from __future__ import annotations

import json
from pathlib import Path

from rloop_trainer.termination import MESSAGE_LIMIT_BYTES, PATH_ENV, write_failure, write_report


def test_the_report_is_written_as_compact_json_where_the_operator_asks(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    report = {"rollouts": 64, "hard_prompts": 3, "kept_samples": 7}

    assert write_report(report, {PATH_ENV: str(path)})

    assert json.loads(path.read_text()) == report
    assert " " not in path.read_text()


def test_nothing_is_written_without_the_variable(tmp_path: Path) -> None:
    assert not write_report({"rollouts": 1}, {})
    assert list(tmp_path.iterdir()) == []


def test_a_filter_report_over_the_limit_keeps_the_counts_of_the_status(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    histogram = {f"{i / 1024:.6f}": i for i in range(1024)}  # a large group size
    report = {"rollouts": 65536, "hard_prompts": 9, "kept_samples": 21, "prompts": 64,
              "success_rate_histogram": histogram}  # fmt: skip
    assert len(json.dumps(report, separators=(",", ":"))) > MESSAGE_LIMIT_BYTES

    assert write_report(report, {PATH_ENV: str(path)})

    assert json.loads(path.read_text()) == {
        "rollouts": 65536,
        "hard_prompts": 9,
        "kept_samples": 21,
    }


def test_an_eval_report_over_the_limit_leaves_out_whole_sets_and_names_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "termination-log"
    pass_at = {str(k): 0.123456789 for k in range(1, 17)}
    sets = {f"validation-set-with-a-long-name-{i:02d}": {
        "avg@n": 0.5, "samples": 1024, "pass@k": pass_at, "problems": 500,
        "per_problem": [0.5] * 100} for i in range(16)}  # fmt: skip
    report = {"policy_uri": "s3://b/p", "sets": sets}

    assert write_report(report, {PATH_ENV: str(path)})

    message = path.read_text()
    written = json.loads(message)
    assert len(message.encode()) <= MESSAGE_LIMIT_BYTES
    assert set(written) == {"sets", "omitted"}
    assert list(written["sets"]) + written["omitted"] == list(sets), "every set, in order"
    first = next(iter(written["sets"].values()))
    assert first == {"avg@n": 0.5, "samples": 1024, "pass@k": pass_at}


def test_an_unwritable_path_does_not_fail_the_phase(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "termination-log"

    assert not write_report({"rollouts": 1}, {PATH_ENV: str(path)})


def test_a_failure_is_the_trainers_line_and_whether_a_retry_can_succeed(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    line = "rloop-trainer dapo: s3://b/train.parquet does not exist; check the URI"

    assert write_failure(line, "InvalidInput", permanent=True, env={PATH_ENV: str(path)})

    assert json.loads(path.read_text()) == {
        "error": line,
        "reason": "InvalidInput",
        "permanent": True,
    }


def test_a_long_failure_is_cut_to_fit_and_stays_json(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    line = "rloop-trainer filter: " + 'bad "row" é\\ ' * 1000

    assert write_failure(line, "InvalidInput", permanent=True, env={PATH_ENV: str(path)})

    assert len(path.read_bytes()) <= MESSAGE_LIMIT_BYTES
    failure = json.loads(path.read_text())
    assert failure["error"].startswith("rloop-trainer filter: bad")
    assert failure["error"].endswith("…") and failure["permanent"] is True

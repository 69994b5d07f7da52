"""`rloop-trainer`: the exit code and the termination message say whether a retry can help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rloop_trainer import s3
from rloop_trainer.cli import EXIT_BAD_CONFIG, EXIT_PERMANENT, EXIT_RETRYABLE, main
from rloop_trainer.termination import PATH_ENV


@pytest.fixture
def termination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the trainer leaves its termination message, as in a pod."""
    path = tmp_path / "termination-log"
    monkeypatch.setenv(PATH_ENV, str(path))
    yield path
    s3.configure()


def filter_args(trajectories_uri: str, output_uri: str) -> list[str]:
    config = {
        "trajectories_uri": trajectories_uri,
        "expert_uri": f"{output_uri}/data.parquet",
        "report_uri": f"{output_uri}/report.json",
        "output_uri": output_uri,
    }
    return ["filter", "--config-json", json.dumps(config)]


def test_a_bad_config_is_permanent(termination: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "--config-json", '{"output_uri": "/tmp/x"}']) == EXIT_BAD_CONFIG

    line = capsys.readouterr().err.strip()
    assert line.startswith("rloop-trainer filter: ") and "trajectories_uri" in line
    failure = json.loads(termination.read_text())
    assert failure == {"error": line, "reason": "InvalidConfig", "permanent": True}


def test_missing_input_is_permanent_and_the_message_is_the_trainers_line(
    termination: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "trajectories").mkdir()

    code = main(filter_args(str(tmp_path / "trajectories"), str(tmp_path / "expert")))

    assert code == EXIT_PERMANENT
    line = capsys.readouterr().err.strip()
    assert line.startswith("rloop-trainer filter: no *.parquet trajectory files under")
    failure = json.loads(termination.read_text())
    assert failure == {"error": line, "reason": "InvalidInput", "permanent": True}


def test_a_store_that_stays_unreachable_is_worth_a_retry(
    termination: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv(s3.RETRY_SECONDS_ENV, "0")
    s3.configure()

    code = main(filter_args("s3://bucket/trajectories", str(tmp_path / "expert")))

    assert code == EXIT_RETRYABLE
    failure = json.loads(termination.read_text())
    assert failure["error"].startswith("rloop-trainer filter: cannot reach the object store")
    assert (failure["reason"], failure["permanent"]) == ("StoreUnavailable", False)

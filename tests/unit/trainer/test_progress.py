"""The progress heartbeat a phase keeps, and the probe that tells a stalled phase."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rloop_trainer import progress
from rloop_trainer.progress import Heartbeat, stall_line
from rloop_trainer.termination import PATH_ENV as TERMINATION_ENV

T0 = datetime(2026, 12, 4, 23, 10, 8, tzinfo=UTC)


def env_of(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        progress.PATH_ENV: str(tmp_path / "progress.json"),
        TERMINATION_ENV: str(tmp_path / "termination-log"),
        **extra,
    }


def test_each_step_rewrites_the_heartbeat_with_the_step_and_when() -> None:
    beat = Heartbeat(12, T0)

    assert beat.to_json() == '{"step": 12, "at": "2026-12-04T23:10:08Z"}'
    assert Heartbeat.from_json(beat.to_json()) == beat


def test_a_phase_beats_from_its_start_and_counts_units_it_has_no_numbers_for(
    tmp_path: Path,
) -> None:
    env = env_of(tmp_path)
    heartbeat = tmp_path / "progress.json"

    progress.started(env)
    assert json.loads(heartbeat.read_text())["step"] is None
    progress.advanced(env)
    progress.advanced(env)
    assert json.loads(heartbeat.read_text())["step"] == 2
    progress.reached(50, env)
    assert json.loads(heartbeat.read_text())["step"] == 50
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]


def test_only_local_rank_0_keeps_the_pods_heartbeat(tmp_path: Path) -> None:
    progress.reached(3, env_of(tmp_path, LOCAL_RANK="1"))

    assert not (tmp_path / "progress.json").exists()


def test_a_heartbeat_it_cannot_write_never_fails_the_phase(tmp_path: Path) -> None:
    progress.reached(3, {progress.PATH_ENV: str(tmp_path / "no-such-dir" / "progress.json")})


def test_a_phase_is_stalled_once_its_last_step_is_older_than_the_timeout() -> None:
    assert stall_line(Heartbeat(7, T0), T0 + timedelta(seconds=1799), 1800) is None
    assert stall_line(Heartbeat(7, T0), T0 + timedelta(seconds=1805), 1800) == (
        "stalled at step 7 since 2026-12-04T23:10:08Z: no progress for 1805 s "
        "(progress timeout 1800 s)"
    )
    assert stall_line(Heartbeat(None, T0), T0 + timedelta(hours=1), 1800) == (
        "stalled before its first step since 2026-12-04T23:10:08Z: no progress for 3600 s "
        "(progress timeout 1800 s)"
    )


def test_the_probe_leaves_the_stall_as_a_retryable_trainer_failure(tmp_path: Path) -> None:
    env = env_of(tmp_path)
    (tmp_path / "progress.json").write_text(Heartbeat(7, T0).to_json())

    line = progress.probe(60, env, T0 + timedelta(minutes=2))

    assert line is not None and line.startswith("stalled at step 7 since 2026-12-04T23:10:08Z")
    assert json.loads((tmp_path / "termination-log").read_text()) == {
        "error": line,
        "reason": "Stalled",
        "permanent": False,
    }


def test_the_probe_passes_a_progressing_phase_and_one_that_has_not_beaten_yet(
    tmp_path: Path,
) -> None:
    env = env_of(tmp_path)
    assert progress.probe(60, env, T0) is None
    (tmp_path / "progress.json").write_text(Heartbeat(7, T0).to_json())
    assert progress.probe(60, env, T0 + timedelta(seconds=59)) is None
    assert not (tmp_path / "termination-log").exists()


def test_the_probe_command_exits_1_with_the_line_once_stalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in env_of(tmp_path).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "progress.json").write_text(Heartbeat(7, T0).to_json())

    assert progress.main(["--stalled-after", "60"]) == progress.EXIT_STALLED
    assert capsys.readouterr().out.startswith("stalled at step 7 since 2026-12-04T23:10:08Z")
    assert progress.main(["--stalled-after", str(10**10)]) == 0

"""`rloop run`'s watchdog runs the phase pods' liveness probe and says when it fails."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rloop_operator.manifests import progress_probe_command
from rloop_operator.stall_watch import StallWatch, probe_period
from rloop_trainer.progress import PATH_ENV, Heartbeat
from rloop_trainer.termination import PATH_ENV as TERMINATION_ENV


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failing_probe(line: str) -> list[str]:
    return [sys.executable, "-c", f"print({line!r}); raise SystemExit(1)"]


def test_the_probe_runs_once_a_period_and_its_failure_is_the_stall() -> None:
    clock = Clock()
    watch = StallWatch(failing_probe("stalled at step 3 since T"), os.environ, 10.0, clock)

    assert watch.stalled() is None  # not due yet
    clock.now = 10.0
    assert watch.stalled() == "stalled at step 3 since T"


def test_a_passing_probe_is_no_stall() -> None:
    clock = Clock()
    watch = StallWatch([sys.executable, "-c", "pass"], os.environ, 1.0, clock)
    clock.now = 1.0

    assert watch.stalled() is None


def test_the_watchdog_runs_the_trainers_probe_as_the_pods_would(tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PATH_ENV: str(tmp_path / "progress"),
        TERMINATION_ENV: str(tmp_path / "termination"),
    }
    stale = Heartbeat(4, datetime.now(UTC) - timedelta(minutes=5))
    (tmp_path / "progress").write_text(stale.to_json())
    clock = Clock()
    timeout = timedelta(minutes=1)
    watch = StallWatch(progress_probe_command(timeout), env, probe_period(timeout), clock)
    clock.now = probe_period(timeout)

    stall = watch.stalled()

    assert stall is not None and stall.startswith("stalled at step 4 since ")
    assert json.loads((tmp_path / "termination").read_text())["reason"] == "Stalled"


def test_probes_come_often_enough_to_see_a_stall_soon_after_the_timeout() -> None:
    assert probe_period(timedelta(hours=1)) == 60.0
    assert probe_period(timedelta(seconds=20)) == 2.0
    assert probe_period(timedelta(seconds=3)) == 1.0

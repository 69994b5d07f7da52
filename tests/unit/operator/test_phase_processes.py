"""The processes of a local run's phases: found by the run's marker, stopped, waited for."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from rloop_operator.phase_processes import (
    marked_processes,
    process_start_time,
    run_marker,
    stop_marked_processes,
    stop_process,
)


def test_a_leftover_phase_process_is_stopped_and_waited_for() -> None:
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        started = process_start_time(leftover.pid)
        assert started is not None

        assert stop_process(leftover.pid, started, grace_seconds=5)

        assert process_start_time(leftover.pid) is None  # a zombie until reaped counts as gone
    finally:
        leftover.kill()
        leftover.wait()


def test_a_pid_now_used_by_another_process_is_left_alone() -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = process_start_time(other.pid)
        assert started is not None

        assert not stop_process(other.pid, started - 1)

        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_process_that_already_exited_needs_no_stopping() -> None:
    done = subprocess.Popen(["sleep", "60"])
    started = process_start_time(done.pid)
    done.kill()
    done.wait()
    assert started is not None and not stop_process(done.pid, started)


def test_every_process_below_a_phase_carries_the_runs_marker_and_is_stopped(
    tmp_path: Path,
) -> None:
    # A phase whose worker runs in a session of its own, as torchrun starts them.
    phase = subprocess.Popen(
        ["sh", "-c", "setsid sleep 60 & wait"], env=run_marker(tmp_path / "state")
    )
    other = subprocess.Popen(["sleep", "60"], env=run_marker(tmp_path / "other-state"))
    try:
        deadline = time.monotonic() + 10
        while len(marked := marked_processes(tmp_path / "state")) < 2:  # the shell, its worker
            assert time.monotonic() < deadline, f"the phase's worker did not start: {marked}"
            time.sleep(0.05)

        assert sorted(stop_marked_processes(tmp_path / "state", grace_seconds=5)) == sorted(
            pid for pid, _ in marked
        )

        assert all(process_start_time(pid) is None for pid, _ in marked)
        assert other.poll() is None
    finally:
        for process in (phase, other):
            process.kill()
            process.wait()

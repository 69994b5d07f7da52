"""The processes of a local run's phases, found and stopped by the executor (`rloop run`).

A phase is a process tree: torchrun, its workers (each in a session of its own), and what
they start (math-verify workers, compilers). The executor starts the top process with
RLOOP_LOCAL_RUN=<the run's state dir> in its environment, which every process below it
inherits; so the executor can find all of them without knowing their pids, after a kill
of its own or of an earlier executor. One writer per phase output needs every one of them
gone, not merely signalled, before the phase starts again: a worker killed with its
torchrun is still alive, and writing, until the kernel has torn it down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

RUN_MARKER_ENV = "RLOOP_LOCAL_RUN"
STOP_GRACE_SECONDS = 10.0


def process_start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot; None if it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def stop_process(pid: int, started: int | None, grace_seconds: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM the process `pid` that started at `started`, SIGKILL it after the grace
    period, and wait until it is gone; False if it had already exited."""
    if started is None or process_start_time(pid) != started:
        return False
    # The process may exit between a look and a signal: ProcessLookupError is fine.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while process_start_time(pid) == started:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    return True


def run_marker(state_dir: Path) -> dict[str, str]:
    """The environment entry that marks every process of the run's phases."""
    return {RUN_MARKER_ENV: str(state_dir.resolve())}


def marked_processes(state_dir: Path) -> list[tuple[int, int]]:
    """(pid, start time) of every live process that carries the run's marker."""
    marker = f"{RUN_MARKER_ENV}={state_dir.resolve()}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            marked = marker in (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        started = process_start_time(int(proc.name))
        if marked and started is not None:
            found.append((int(proc.name), started))
    return found


def stop_marked_processes(state_dir: Path, grace_seconds: float = STOP_GRACE_SECONDS) -> list[int]:
    """Stop every process of the run's phases and wait until all are gone; their pids."""
    stopped = []
    for pid, started in marked_processes(state_dir):
        if stop_process(pid, started, grace_seconds):
            stopped.append(pid)
    return stopped

"""Child processes of the test servers: own process group, log file, no strays."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ServerStartError(RuntimeError):
    """A test server did not come up; the message names the server and its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, all held open together so none repeats."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class Server:
    """One running server process, in a process group of its own."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ServerStartError(
                f"{self.name} exited with code {code}; log {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after a grace period; safe to call twice."""
        # The group is signalled even after the leader exited: a leader can leave children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def die_with_parent() -> None:
    # Runs in the child before exec: if the test process is SIGKILLed, its servers get
    # SIGTERM from the kernel instead of living on as strays (the flag survives exec).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(
    name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
) -> Server:
    """Start `argv` in a new session (its own process group) with output to `log_dir/name.log`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
            env=env,
        )
    return Server(name=name, process=process, log_path=log_path)


def wait_until(
    ready: Callable[[], bool], server: Server, timeout_s: float, what: str, poll_s: float = 0.25
) -> None:
    """Poll `ready()` until true; fail fast if `server` dies, with its log tail in the error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server.check_alive()
        if ready():
            return
        time.sleep(poll_s)
    raise ServerStartError(
        f"{server.name}: {what} not reached within {timeout_s:.0f}s; "
        f"log {server.log_path}:\n{server.log_tail()}"
    )


def start_ready_server(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    ready: Callable[[], bool],
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server and wait until `ready()`; a server that never gets ready is stopped."""
    server = start_server(name, argv, log_dir, env=env)
    try:
        wait_until(ready, server, timeout_s, "readiness")
    except BaseException:
        server.stop()
        raise
    return server

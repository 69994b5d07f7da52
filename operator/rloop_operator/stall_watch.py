"""`rloop run`'s watchdog: the phase pods' liveness probe, run by the local executor.

On a cluster the kubelet runs the phase container's exec probe
(manifests.progress_probe_command) in the container. Locally the executor runs the same
command, every `probe_period`, with the phase's environment: it fails once the phase has
made no progress for the progress timeout, after leaving "stalled at step N since T" in
the phase's termination-message file. The executor then stops the phase and records that
message as the failure, and the plan retries the stage, which resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 30.0


def probe_period(progress_timeout: timedelta) -> float:
    """Seconds between probes: a tenth of the timeout, within 1 s and 60 s."""
    return min(max(progress_timeout.total_seconds() / 10, 1.0), 60.0)


class StallWatch:
    """Runs the probe `command` at most once a `period`; says when it has failed."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.period = period
        self.clock = clock
        self.next_probe = clock() + period

    def stalled(self) -> str | None:
        """The probe's line when a probe due now fails; None otherwise."""
        if self.clock() < self.next_probe:
            return None
        self.next_probe = self.clock() + self.period
        try:
            done = subprocess.run(
                self.command,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            log.warning(
                "the progress probe %s took over %.0f s", self.command, PROBE_TIMEOUT_SECONDS
            )
            return None
        if done.returncode == 0:
            return None
        return done.stdout.strip() or f"progress probe exited {done.returncode}: {done.stderr}"

"""The trackers of one phase: every backend spec.tracking turns on, fed together.

A tracker is never the phase's business: one that cannot be reached, or that fails
mid-phase (an HTTP 500, a timeout, a full disk), costs one warning in the phase log and
is dropped for the rest of the phase; the phase goes on, and metrics.jsonl in the store
has every step either way. Only the main rank tracks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping

from rloop_trainer.config import PhaseConfig

# The backends register themselves on import; importing them loads no tracker library.
from rloop_trainer.tracking import (  # noqa: F401
    mlflow_backend,
    tensorboard_backend,
    wandb_backend,
)
from rloop_trainer.tracking.base import BACKENDS, TrackedPhase, Tracker
from rloop_trainer.tracking.credentials import load_credentials
from rloop_trainer.tracking.names import flatten_params

log = logging.getLogger(__name__)

# Enough of a tracker's error to say what went wrong; a server may answer with a whole page.
ERROR_CHARS = 300
DROPPED = (
    "tracker %s failed; the phase goes on without it "
    "(metrics.jsonl in the store has every step): %s"
)


class PhaseTrackers:
    """The phase's live trackers; a failing one is dropped with one warning."""

    def __init__(self, phase: TrackedPhase | None) -> None:
        self.trackers: dict[str, Tracker] = {}
        if phase is None:
            return
        load_credentials()
        for name in phase.tracking.backends:
            try:
                self.trackers[name] = BACKENDS[name](phase)
            except Exception as exc:  # any failure of a tracker is only a warning
                self._drop(name, exc)

    def _drop(self, name: str, error: Exception) -> None:
        self.trackers.pop(name, None)
        message = " ".join(f"{type(error).__name__}: {error}".split())[:ERROR_CHARS]
        log.warning(DROPPED, name, message)

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                call(tracker)
            except Exception as exc:
                self._drop(name, exc)

    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        if metrics:
            self._each(lambda tracker: tracker.log_metrics(metrics, rl_step))

    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if metrics:
            self._each(lambda tracker: tracker.log_phase_metrics(metrics, step))

    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        if files:
            self._each(lambda tracker: tracker.log_files(files, rl_step))

    def close(self, succeeded: bool) -> None:
        self._each(lambda tracker: tracker.finish(succeeded))
        self.trackers.clear()


def tracked_phase(config: PhaseConfig, phase: str) -> TrackedPhase | None:
    """What the trackers need of a phase config; None when it has no tracking section."""
    if config.tracking is None or not config.tracking.backends:
        return None
    settings = config.model_dump(mode="json", exclude={"tracking"})
    return TrackedPhase(
        run=config.run,
        phase=phase,
        tracking=config.tracking,
        phase_params=flatten_params(settings),
        run_params=flatten_params(config.tracking.run_spec),
    )


@contextlib.contextmanager
def phase_trackers(
    config: PhaseConfig, phase: str, main_rank: bool = True
) -> Iterator[PhaseTrackers]:
    """The phase's trackers (none off the main rank or without spec.tracking), closed as
    finished when the block ends and as failed when it raises."""
    trackers = PhaseTrackers(tracked_phase(config, phase) if main_rank else None)
    try:
        yield trackers
    except BaseException:
        trackers.close(succeeded=False)
        raise
    trackers.close(succeeded=True)

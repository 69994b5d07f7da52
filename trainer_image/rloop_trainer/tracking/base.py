"""One interface for every tracker, and the registry that names the backends.

Each RLoopRun is one run in a tracker; each phase opens it again (a pod of its own) and
adds what it has: the run's curves at the run's RL step (the x axis on which a vanilla and
an RLoop run compare), its own series (RFT epochs) and parameters under the phase's label,
and the analysis files. A backend registers itself by the name spec.tracking uses; the
phase code never names one (session.py opens those the settings turn on).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from rloop_trainer.config import PhaseTracking, RunRef


@dataclass(frozen=True)
class TrackedPhase:
    """Which run and phase a tracker writes for, and the parameters it logs."""

    run: RunRef
    phase: str  # dapo, filter, rft or eval
    tracking: PhaseTracking
    phase_params: Mapping[str, str]  # the phase config, flattened
    run_params: Mapping[str, str]  # the run's spec, flattened

    @property
    def label(self) -> str:
        """The phase's name inside its run: iter-000/dapo, iter-000/rft, ...; an evaluation
        is named by the RL steps behind its policy, which is where its points lie."""
        if self.phase == "eval":
            return f"eval/rl-step-{self.run.rl_step:06d}"
        return f"iter-{self.run.iteration:03d}/{self.phase}"

    @property
    def run_key(self) -> str:
        """namespace/name/uid: one tracker run per RLoopRun, even one made again under its
        old name (a new uid)."""
        return f"{self.run.namespace}/{self.run.name}/{self.run.uid}"

    @property
    def run_digest(self) -> str:
        """A short fixed-length id of the run, for trackers that take an id of their own."""
        return hashlib.sha256(self.run_key.encode()).hexdigest()[:16]


class Tracker(ABC):
    """One backend for one phase. The constructor connects and opens (or resumes) the run
    and the phase, with their parameters. Any method may raise: session.PhaseTrackers
    turns the first failure into one warning and goes on without the backend."""

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        """The run's curves, at the run's RL step."""

    @abstractmethod
    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """A series of the phase alone (RFT: one point per epoch), at the phase's step."""

    @abstractmethod
    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        """Files of the run by relative path (the analysis: analysis.json and pictures)."""

    @abstractmethod
    def finish(self, succeeded: bool) -> None:
        """Close the phase, marked as finished or failed."""


TrackerFactory = Callable[[TrackedPhase], Tracker]
BACKENDS: dict[str, TrackerFactory] = {}
_Backend = TypeVar("_Backend", bound=type[Tracker])


def register(name: str) -> Callable[[_Backend], _Backend]:
    """Class decorator: the backend spec.tracking turns on by `name`."""

    def add(backend: _Backend) -> _Backend:
        BACKENDS[name] = backend
        return backend

    return add

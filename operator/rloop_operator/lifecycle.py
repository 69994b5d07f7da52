"""Where a run and its children are in their lives: the phase of a run or of a child, and the
stage of a run's current iteration (status.phase, status.stage)."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Stage(StrEnum):
    NONE = ""
    EVALUATING_BASE = "EvaluatingBase"  # iteration 0 only: theta_0, before any RL step
    EXPLORING = "Exploring"
    FILTERING = "Filtering"
    CONSOLIDATING = "Consolidating"
    EVALUATING = "Evaluating"

"""Where a run and its children are in their lives: the phase of a run or of a child, the
stage of a run's current iteration (status.phase, status.stage), and what can take a running
child's capacity away without its failing (status.iterations[].disruptions)."""

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


class Disruption(StrEnum):
    """What ended an attempt without its failing: never counted against maxRetries
    (planning/disruptions)."""

    EVICTION = "Eviction"  # the Eviction API (e.g. a node drain) or the kubelet under pressure
    PREEMPTION = "Preemption"  # the scheduler, for a pod of higher priority
    NODE_LOST = "NodeLost"  # the node went away or became unreachable
    KUEUE_PREEMPTION = "KueuePreemption"  # Kueue evicted the child's Workload and suspended it
    # The phase stopped making progress (progressTimeout) or a rank went silent in a
    # collective (collectiveTimeout): a frozen process or node, ended from the inside.
    HANG = "Hang"

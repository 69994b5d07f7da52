"""Children of a run: their deterministic names, labels, and what their status says.

Pure. A child is a PyTorchJob (DAPO, RFT) or a batch/v1 Job (filter, eval). Its
name is `<run>-i<NN>-<stage>[-r<retry>]`, short enough for every name and label
the training operator and the Job controller derive from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rloop_operator.api import Stage

LABEL_RUN = "rloop.io/run"
LABEL_ITERATION = "rloop.io/iteration"
LABEL_STAGE = "rloop.io/stage"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_RUN_NAME = "rloop.io/run-name"

# Pods of a PyTorchJob are `<job>-worker-<index>` and carry the job name as a label
# value; both must stay within 63 characters.
MAX_CHILD_NAME = 63 - len("-worker-1023")
MAX_LABEL_VALUE = 63

STAGE_SLUG = {
    Stage.EXPLORING: "rl",
    Stage.FILTERING: "filter",
    Stage.CONSOLIDATING: "rft",
    Stage.EVALUATING: "eval",
}
STAGE_OF_SLUG = {slug: stage for stage, slug in STAGE_SLUG.items()}


class ChildKind(StrEnum):
    PYTORCHJOB = "PyTorchJob"
    JOB = "Job"


def kind_of(stage: Stage) -> ChildKind:
    return (
        ChildKind.PYTORCHJOB if stage in (Stage.EXPLORING, Stage.CONSOLIDATING) else ChildKind.JOB
    )


def _shorten(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - len(digest) - 1].rstrip('-.')}-{digest}"


def run_label(run_name: str) -> str:
    """Value of the rloop.io/run label: the run's name, shortened with a hash if too long."""
    return _shorten(run_name, MAX_LABEL_VALUE)


def child_name(run_name: str, iteration: int, stage: Stage, retry: int) -> str:
    suffix = f"-i{iteration:02d}-{STAGE_SLUG[stage]}" + (f"-r{retry}" if retry else "")
    return _shorten(run_name, MAX_CHILD_NAME - len(suffix)) + suffix


class ChildPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_finished(self) -> bool:
        return self in (ChildPhase.SUCCEEDED, ChildPhase.FAILED)


@dataclass(frozen=True)
class Child:
    """What the operator needs to know of one child object."""

    name: str
    kind: ChildKind
    iteration: int
    stage: Stage
    phase: ChildPhase
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None
    created_at: datetime | None = None
    deleting: bool = False
    # The trainer said its failure will recur (reports.TrainerFailure.permanent); then
    # `reason` and `message` are the trainer's own, and the run fails without retries.
    permanent: bool = False


def _true_condition(status: dict[str, Any], *types: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") in types and condition.get("status") == "True":
            return dict(condition)
    return None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _phase_from_status(
    kind: ChildKind, status: dict[str, Any]
) -> tuple[ChildPhase, dict[str, Any]]:
    # A finished PyTorchJob has Succeeded or Failed True somewhere in its conditions,
    # not necessarily as the last one (the training operator appends, and may add
    # Restarting/Running after a transient failure).
    done_types = ("Succeeded",) if kind is ChildKind.PYTORCHJOB else ("Complete",)
    succeeded = _true_condition(status, *done_types)
    if succeeded is not None:
        return ChildPhase.SUCCEEDED, succeeded
    failed = _true_condition(status, "Failed")
    if failed is not None:
        return ChildPhase.FAILED, failed
    running = _true_condition(status, "Running") or (
        {"type": "Running"} if kind is ChildKind.JOB and status.get("active") else None
    )
    if running is not None:
        return ChildPhase.RUNNING, running
    return ChildPhase.PENDING, {}


def observe_child(obj: dict[str, Any]) -> Child | None:
    """Read a PyTorchJob or Job object; None if it is not one of ours."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    try:
        iteration = int(labels[LABEL_ITERATION])
        stage = STAGE_OF_SLUG[labels[LABEL_STAGE]]
    except (KeyError, ValueError):
        return None
    kind = ChildKind(obj.get("kind", kind_of(stage).value))
    phase, condition = _phase_from_status(kind, obj.get("status") or {})
    return Child(
        name=metadata["name"],
        kind=kind,
        iteration=iteration,
        stage=stage,
        phase=phase,
        reason=condition.get("reason", ""),
        message=condition.get("message", ""),
        finished_at=_parse_time(condition.get("lastTransitionTime")) if phase.is_finished else None,
        created_at=_parse_time(metadata.get("creationTimestamp")),
        deleting=bool(metadata.get("deletionTimestamp")),
    )

"""What plan() decides: the actions to carry out and the status to write. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rloop_operator.api import RLoopRunStatus
from rloop_operator.lifecycle import Stage
from rloop_operator.stage_reports import ReportKind


@dataclass(frozen=True)
class CreateChild:
    name: str
    iteration: int
    stage: Stage


@dataclass(frozen=True)
class DeleteChild:
    name: str
    kind: str


@dataclass(frozen=True)
class ReadReport:
    """Plan again once this child's report has been read from the store."""

    child: str
    uri: str
    report: ReportKind


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    child: str | None = None


Action = CreateChild | DeleteChild | ReadReport | EmitEvent


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: RLoopRunStatus
    requeue_after: float | None = None

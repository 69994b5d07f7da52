"""The status being planned for one run, and the actions that go with it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from rloop_operator.api import Condition, IterationRecord
from rloop_operator.planning.actions import Action, EmitEvent, Plan
from rloop_operator.planning.blockers import Blocker
from rloop_operator.planning.conditions import conditions_for
from rloop_operator.planning.inputs import RunView


class StatusDraft:
    """The status being planned, plus the actions that go with it."""

    def __init__(self, run: RunView, now: datetime) -> None:
        self.run = run
        self.now = now
        self.status = run.status.model_copy(update={"observed_generation": run.generation})
        self.actions: list[Action] = []
        self.requeue_after: float | None = None
        self.blocker: Blocker | None = None
        # What keeps the active child from progressing (attempts.stall).
        self.stall: Blocker | None = None

    def update(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def act(self, action: Action) -> None:
        """Plan `action` once: a child the plan ended and then failed the run for is also
        among those release_children deletes."""
        if action not in self.actions:
            self.actions.append(action)

    def event(
        self,
        kind: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        child: str | None = None,
    ) -> None:
        self.act(EmitEvent(kind, reason, message, child))

    def requeue(self, seconds: float) -> None:
        self.requeue_after = (
            seconds if self.requeue_after is None else min(self.requeue_after, seconds)
        )

    def record(self, index: int) -> IterationRecord:
        for record in self.status.iterations:
            if record.index == index:
                return record
        return IterationRecord(index=index)

    def update_record(self, index: int, **changes: object) -> None:
        updated = self.record(index).model_copy(update=changes)
        others = [r for r in self.status.iterations if r.index != index]
        self.update(iterations=tuple(sorted([*others, updated], key=lambda r: r.index)))

    def previous_condition(self, type_: str) -> Condition | None:
        return next((c for c in self.run.status.conditions if c.type == type_), None)

    def finish(self, total: int | None) -> Plan:
        """The plan; `total` iterations for the progress column (None: unknown, kept)."""
        if total is not None:
            self.update(progress=f"{self.status.iteration}/{total}")
        self.update(conditions=conditions_for(self.status, self.now, self.blocker, self.stall))
        return Plan(tuple(self.actions), self.status, self.requeue_after)

"""Conditions of a run, derived from its phase and what blocks it (metav1.Condition shape).

Pure. A condition's lastTransitionTime changes only when its status does, so
re-planning an unchanged run leaves its conditions byte-for-byte the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from rloop_operator.api import Condition, RLoopRunStatus
from rloop_operator.lifecycle import Phase
from rloop_operator.planning.blockers import Blocker

Truth = Literal["True", "False", "Unknown"]


def _desired(
    status: RLoopRunStatus, blocker: Blocker | None, stall: Blocker | None
) -> list[tuple[str, Truth, str, str]]:
    phase, stage = status.phase, status.stage.value
    running = phase is Phase.RUNNING
    progress = (
        f"iteration {status.iteration + 1}: {stage}" if running and stage else status.message or ""
    )
    progressing: tuple[str, Truth, str, str] = (
        "Progressing",
        "True" if running else "False",
        stage if running and stage else (status.reason or phase.value),
        progress,
    )
    if running and stall is not None:
        # Running, but its pods cannot start (or wait for Kueue): no claim of progress.
        progressing = ("Progressing", "False", stall.reason, stall.message)
    desired: list[tuple[str, Truth, str, str]] = [
        progressing,
        ("Suspended", "True" if phase is Phase.SUSPENDED else "False", phase.value, ""),
    ]
    desired.append(
        (
            "Blocked",
            "True" if blocker else "False",
            blocker.reason if blocker else "NotBlocked",
            blocker.message if blocker else "",
        )
    )
    if phase.is_terminal:
        desired.append((phase.value, "True", status.reason or phase.value, status.message or ""))
    return desired


def conditions_for(
    status: RLoopRunStatus,
    now: datetime,
    blocker: Blocker | None = None,
    stall: Blocker | None = None,
) -> tuple[Condition, ...]:
    previous = {c.type: c for c in status.conditions}
    result = []
    for type_, truth, reason, message in _desired(status, blocker, stall):
        old = previous.get(type_)
        if type_ == "Blocked" and old is None and truth == "False":
            continue
        changed = old is None or old.status != truth
        result.append(
            Condition(
                type=type_,
                status=truth,
                reason=reason,
                message=message,
                last_transition_time=now if changed or old is None else old.last_transition_time,
                observed_generation=status.observed_generation,
            )
        )
    return tuple(result)

"""Transitions of a run outside the stage machine: failing, holding while something blocks
it (Blocked), reopening a finished run, and releasing the children of a finished one.
Pure; plan() calls them.
"""

from __future__ import annotations

from datetime import timedelta

from rloop_operator.api import RLoopRunSpec
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.actions import DeleteChild, Plan
from rloop_operator.planning.blockers import (
    REFUSED,
    Blocker,
    create_retry_delay,
    refused_create,
    spec_unusable,
)
from rloop_operator.planning.inputs import Observed, PlanSettings
from rloop_operator.planning.spec_edits import INVALID_SPEC, reopening
from rloop_operator.planning.status_draft import StatusDraft
from rloop_operator.stages import launcher_for


def fail(
    draft: StatusDraft, reason: str, message: str, total: int | None, child: str | None = None
) -> Plan:
    if draft.status.phase is not Phase.FAILED:
        draft.event("Warning", reason, message, child)
    draft.update(
        phase=Phase.FAILED,
        reason=reason,
        message=message,
        active_child=None,
        retry_after=None,
        finished_at=draft.status.finished_at or draft.now,
    )
    return draft.finish(total)


def release_children(draft: StatusDraft, observed: Observed) -> StatusDraft:
    """A finished run holds no GPUs: its children still running are deleted. The
    reconciler writes the status before it deletes, so the outcome is recorded first."""
    if not draft.status.phase.is_terminal:
        return draft
    for child in observed.children:
        if not child.phase.is_terminal and not child.deleting:
            draft.act(DeleteChild(child.name, child.kind))
            draft.event(
                "Normal",
                "ChildDeleted",
                f"deleted {child.kind} {child.name}: the run is {draft.status.phase.value}",
                child.name,
            )
    return draft


def note_ignored_fields(draft: StatusDraft) -> None:
    """Fields of a newer CRD are ignored, with one event each time the set changes."""
    ignored = draft.run.ignored_fields
    if ignored == draft.status.ignored_fields:
        return
    draft.update(ignored_fields=ignored)
    if ignored:
        draft.event(
            "Warning",
            "UnknownFieldsIgnored",
            f"this operator version does not know {', '.join(ignored)} (set by a newer CRD) "
            "and ignores them; upgrade the operator to use them",
        )


def unusable_spec(draft: StatusDraft, observed: Observed, problem: str) -> Plan:
    """Fail a run that never started; hold one under way until its spec is fixed."""
    status = draft.status
    if status.phase.is_terminal:
        return release_children(draft, observed).finish(None)
    if status.started_at is None:
        return fail(draft, INVALID_SPEC, problem, total=None)
    running = next(
        (
            f"{c.kind} {c.name}"
            for c in observed.children
            if c.name == status.active_child and not c.phase.is_terminal and not c.deleting
        ),
        None,
    )
    blocker = spec_unusable(problem, running)
    if status.phase is Phase.RUNNING and running is None:
        draft.update(phase=Phase.PENDING)
    hold(draft, blocker)
    return draft.finish(None)


def reopen(draft: StatusDraft, spec: RLoopRunSpec, failures: int) -> bool:
    """Whether an edit reopened this finished run (see spec_edits); `failures` counts the
    failed children of the stage it stopped in."""
    why = reopening(spec, draft.status, failures)
    if why is None:
        return False
    draft.event("Normal", "Reopened", why)
    draft.update(phase=Phase.PENDING, reason=None, message=None, finished_at=None)
    return True


def hold(draft: StatusDraft, blocker: Blocker) -> None:
    """Record what blocks the run: the Blocked condition, the status message, and one
    Warning event each time the blocker changes."""
    previous = draft.previous_condition("Blocked")
    unchanged = (
        previous is not None
        and previous.status == "True"
        and (previous.reason, previous.message) == (blocker.reason, blocker.message)
    )
    if not unchanged:
        draft.event("Warning", blocker.reason, blocker.message)
    draft.blocker = blocker
    draft.update(reason=blocker.reason, message=blocker.message)


def unblock(draft: StatusDraft) -> None:
    previous = draft.previous_condition("Blocked")
    if previous is not None and previous.status == "True":
        draft.update(reason=None, message=None)


def block(draft: StatusDraft, blocker: Blocker, settings: PlanSettings, total: int) -> Plan:
    """Wait, without failing, for a missing object the user can still create."""
    if draft.status.phase is not Phase.SUSPENDED:
        draft.update(phase=Phase.PENDING)
    hold(draft, blocker)
    draft.requeue(settings.blocked_requeue_seconds)
    return draft.finish(total)


def refused_or_backing_off(
    draft: StatusDraft,
    spec: RLoopRunSpec,
    name: str,
    stage: Stage,
    observed: Observed,
    settings: PlanSettings,
) -> bool:
    """True while the API server refuses the child: the run is Blocked with the API's
    message and tries again after a backoff that doubles as long as the refusals last."""
    previous = draft.previous_condition("Blocked")
    refusal = observed.refused.get(name)
    if refusal is not None:
        delay = create_retry_delay(
            previous, draft.now, settings.backoff_base_seconds, settings.backoff_cap_seconds
        )
        kind = launcher_for(spec, stage).kind
        draft.update(retry_after=draft.now + timedelta(seconds=delay))
        blocker = refused_create(kind, name, refusal)
    elif (
        previous is not None
        and previous.status == "True"
        and previous.reason.startswith(REFUSED)
        and draft.status.retry_after is not None
        and draft.now < draft.status.retry_after
        and not spec.suspend
    ):
        blocker = Blocker(previous.reason, previous.message)
    else:
        return False
    if draft.status.phase is not Phase.SUSPENDED:
        draft.update(phase=Phase.PENDING, active_child=None)
    hold(draft, blocker)
    assert draft.status.retry_after is not None
    draft.requeue((draft.status.retry_after - draft.now).total_seconds())
    return True

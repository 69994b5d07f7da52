"""Attempts of a stage and their pods: which pods the plan looks at, when an attempt may
start (one writer per stage), and whether a started one is stuck or out of time. Pure;
plan() calls them with the pods the reconciler read (`Observed.pods`).

- One writer: the phase outputs of a stage are fenced in the store, but a pod of an old
  attempt that still runs holds GPUs and may write until it stops. A new attempt is
  created only once every pod of the stage's earlier attempts (and of an earlier
  incarnation of the same name, e.g. before a suspend) has finished or is gone; pods kept
  for `kubectl logs` are finished and do not count.
- Stuck: a child whose pods cannot start (Unschedulable, ImagePullBackOff,
  CreateContainerConfigError for a missing Secret, ...) turns Progressing False with the
  cause as its reason and the scheduler's or kubelet's message. A child Kueue holds
  (Suspended) is Queued, never stuck, and queued time does not count toward
  spec.resources.startTimeout.
- Start timeout: an attempt whose pods have not all started startTimeout after it was
  created (or admitted by Kueue) is deleted and counts as a failed attempt.

Without pods (`rloop run` runs processes) none of this applies: a child whose pods were
not read is neither waited for nor timed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rloop_operator.api import IterationRecord, RLoopRunSpec
from rloop_operator.children import Child, child_name
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.blockers import Blocker
from rloop_operator.planning.disruptions import preempted
from rloop_operator.planning.inputs import RunView
from rloop_operator.planning.status_draft import StatusDraft
from rloop_operator.pods import Pods, not_started, writers
from rloop_operator.stages import launcher_for, stage_info
from rloop_operator.trainer_failures import failed_permanently

# Pods are watched (child_watch.PODS); the poll is the clock of startTimeout and a net
# for an event the watch missed while it was listing again.
START_POLL_SECONDS = 10.0
WRITERS_POLL_SECONDS = 2.0
QUEUED = "Queued"
START_TIMEOUT = "StartTimeout"
PREVIOUS_ATTEMPT_RUNNING = "PreviousAttemptRunning"
# The reason launchers give a child whose Suspended condition is True (launchers.base).
SUSPENDED = "Suspended"


def failed_attempts(record: IterationRecord, run_name: str, index: int, stage: Stage) -> list[str]:
    """The failed children of one stage of one iteration, oldest first."""
    base = child_name(run_name, index, stage, 0)
    return [name for name in record.failed_jobs if name == base or name.startswith(f"{base}-r")]


def pods_to_read(run: RunView, children: Sequence[Child]) -> dict[str, Stage]:
    """{child name: stage} of the children whose pods the plan needs: every unfinished
    child; the current stage's attempt; and, while that attempt does not exist yet, the
    stage's earlier attempts (the pods it must wait for)."""
    wanted = {child.name: child.stage for child in children if not child.phase.is_terminal}
    status = run.status
    if status.stage is Stage.NONE or status.phase.is_terminal:
        return wanted
    record = next((r for r in status.iterations if r.index == status.iteration), None)
    failed = failed_attempts(
        record or IterationRecord(index=status.iteration), run.name, status.iteration, status.stage
    )
    current = child_name(run.name, status.iteration, status.stage, len(failed))
    attempts = [current] if any(c.name == current for c in children) else [*failed, current]
    return wanted | dict.fromkeys(attempts, status.stage)


def stall(draft: StatusDraft, blocker: Blocker, announce: bool = True) -> None:
    """The run is not progressing: Progressing False with the cause, the status message,
    and (`announce`) one Warning event each time the cause changes."""
    previous = draft.previous_condition("Progressing")
    if announce and (
        previous is None
        or (previous.status, previous.reason, previous.message)
        != ("False", blocker.reason, blocker.message)
    ):
        draft.event("Warning", blocker.reason, blocker.message, draft.status.active_child)
    draft.stall = blocker
    draft.update(reason=blocker.reason, message=blocker.message)


def note_preempted(draft: StatusDraft, child: Child, waiting: str) -> None:
    """Progressing False (Preempted) while a disrupted attempt waits for `waiting`; its
    Warning event went out when the disruption was recorded."""
    blocker = preempted(draft, child.iteration, child.stage, child.name, waiting)
    if blocker is not None:
        stall(draft, blocker, announce=False)


def earlier_attempt_writing(
    draft: StatusDraft, pods: Pods, name: str, index: int, stage: Stage
) -> bool:
    """True (and the run waits) while a pod of an earlier attempt of the stage may write."""
    attempts = [*failed_attempts(draft.record(index), draft.run.name, index, stage), name]
    busy = [pod for attempt in attempts for pod in writers(pods.get(attempt, ()))]
    if not busy:
        return False
    draft.requeue(WRITERS_POLL_SECONDS)
    still = ", ".join(busy)
    # After a disruption the run keeps saying what happened, and what it now waits for.
    disrupted = preempted(draft, index, stage, name, f"its earlier pods have stopped: {still}")
    if disrupted is not None:
        stall(draft, disrupted, announce=False)
        return True
    stall(
        draft,
        Blocker(
            PREVIOUS_ATTEMPT_RUNNING,
            f"{name} starts once the pods of earlier attempts have stopped, so that one "
            f"attempt at a time writes the stage's outputs; still running: {still}",
        ),
    )
    return True


def end_early(draft: StatusDraft, spec: RLoopRunSpec, child: Child, pods: Pods) -> Child | None:
    """An unfinished child the operator ends itself, as failed: one whose controller would
    retry in place a pod the trainer stopped on a permanent error, or one whose pods have
    not all started within spec.resources.startTimeout (watch_start). Else None."""
    if launcher_for(spec, child.stage).retries_pods_in_place:
        failed = failed_permanently(child, pods)
        if failed is not None:
            return failed
    return watch_start(draft, spec, child, pods)


def watch_start(draft: StatusDraft, spec: RLoopRunSpec, child: Child, pods: Pods) -> Child | None:
    """For an unfinished child: say why it does not progress (Queued, Preempted, or what
    keeps its pods from starting) and look again soon; returns the child as failed once its
    pods have not all started within spec.resources.startTimeout. An attempt created again
    after a disruption ran before, so its spec is sound: it waits for capacity to return
    as long as that takes, like a child in Kueue's queue."""
    draft.update(reason=None, message=None)
    if child.phase is Phase.PENDING and child.reason == SUSPENDED:
        message = f"{child.kind} {child.name} is queued: Kueue admits it once its queue has quota"
        stall(draft, Blocker(QUEUED, f"{message} ({child.message})" if child.message else message))
        return None
    if child.name not in pods:
        return None
    expected = spec.resources.nodes if stage_info(child.stage).distributed else 1
    waiting = not_started(pods[child.name], expected)
    if waiting is None:
        return None
    draft.requeue(START_POLL_SECONDS)
    disrupted = preempted(
        draft, child.iteration, child.stage, child.name, f"its pods start ({waiting.message})"
    )
    if disrupted is not None:
        stall(draft, disrupted, announce=False)
        return None
    timeout = spec.resources.start_timeout_seconds
    since = max((t for t in (child.created_at, child.admitted_at) if t is not None), default=None)
    if timeout is not None and since is not None:
        left = timeout - (draft.now - since).total_seconds()
        if left <= 0:
            message = (
                f"the pods did not all start within spec.resources.startTimeout="
                f"{spec.resources.start_timeout}: {waiting.reason}: {waiting.message}"
            )
            return replace(child, phase=Phase.FAILED, reason=START_TIMEOUT, message=message)
        draft.requeue(left)
    if waiting.stuck:
        stall(draft, Blocker(waiting.reason, f"{child.kind} {child.name}: {waiting.message}"))
    return None

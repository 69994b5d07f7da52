"""Disruptions: attempts ended without their failing. Pure; plan() asks.

On a shared cluster an attempt loses its pods for reasons that are no fault of its own:
a pod evicted (the Eviction API, e.g. a node drain, or the kubelet under pressure),
preempted by the scheduler for a pod of higher priority, its node lost (a spot reclaim:
the pod garbage collector or the taint manager deletes it), or its child preempted by
Kueue. Kubernetes marks such a pod with the condition DisruptionTarget before it goes
(pods.PodDisruption); Kueue counts the evictions of the child's Workload
(kueue_workloads). A phase that hung (a frozen rank, a stuck call) is ended from the
inside, and its trainer says so (reason Stalled or CollectiveTimeout); such a hang is
most often a frozen process or node, so it is handled the same way. None of them counts
against spec.maxRetries:

- A disrupted pod (or a hang) ends its whole attempt: its peers would only wait in a
  collective, so the child is deleted (every GPU of the attempt is freed at once) and,
  once its pods have stopped, created again with the same name. The trainer resumes from
  the stage's latest checkpoint.
- A child Kueue preempted stays: Kueue suspended it, its controller deleted its pods, and
  it resumes from the checkpoint when Kueue admits it again.

Each disruption is recorded once (by the pod's UID, or the Workload's UID and the
eviction's number) in its iteration's record, counted per stage in status.disruptions,
announced by a Warning event Preempted (a hang: Stalled or CollectiveTimeout), and shown
as Progressing False with that reason until the attempt runs again. spec.maxDisruptions,
when set, bounds the disruptions of one stage of one iteration that do not count; each
one beyond it is a failed attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from rloop_operator.api import DisruptionRecord, IterationRecord, RLoopRunSpec
from rloop_operator.children import Child, child_name
from rloop_operator.kueue_workloads import WorkloadEvictions
from rloop_operator.lifecycle import Disruption, Phase, Stage
from rloop_operator.planning.blockers import Blocker
from rloop_operator.planning.inputs import Observed
from rloop_operator.planning.status_draft import StatusDraft
from rloop_operator.pods import PodState

PREEMPTED = "Preempted"
# The trainer's reasons for a phase that hung (rloop_trainer.progress, rank_watch).
HANG_REASONS = frozenset({"Stalled", "CollectiveTimeout"})
# The DisruptionTarget reasons of k8s.io/api core/v1 (and the kubelet's older pod reason).
_KIND_OF_REASON = {
    "EvictionByEvictionAPI": Disruption.EVICTION,
    "TerminationByKubelet": Disruption.EVICTION,
    "Evicted": Disruption.EVICTION,
    "PreemptionByScheduler": Disruption.PREEMPTION,
    "DeletionByTaintManager": Disruption.NODE_LOST,
    "DeletionByPodGC": Disruption.NODE_LOST,
}


def new_disruptions(draft: StatusDraft, child: Child, observed: Observed) -> list[DisruptionRecord]:
    """The disruptions of `child` not recorded yet: its pods' (of this incarnation of the
    name) and its Workload's evictions beyond those recorded."""
    recorded = {record.id for record in draft.record(child.iteration).disruptions}
    pods = _this_incarnation(child, observed.pods.get(child.name, ()))
    found = [
        DisruptionRecord(
            child=child.name,
            kind=_KIND_OF_REASON.get(pod.disruption.reason, Disruption.EVICTION),
            reason=pod.disruption.reason,
            message=f"pod {pod.name} on node {pod.node or '(none)'}: {pod.disruption.reason}: "
            f"{pod.disruption.message or 'no message'}",
            at=draft.now,
            id=pod.uid,
        )
        for pod in pods
        if pod.disruption is not None and pod.uid not in recorded
    ]
    hang = _hang(draft, child)
    # A lost pod hangs its peers too: one disruption, told by Kubernetes.
    if hang is not None and hang.id not in recorded and not _disrupted(pods):
        found.append(hang)
    evictions = observed.kueue_evictions.get(child.name)
    if evictions is not None:
        prefix = f"{evictions.workload_uid}/"
        seen = sum(1 for known in recorded if known.startswith(prefix))
        found += [
            _kueue_record(draft, child, evictions, n) for n in range(seen + 1, evictions.count + 1)
        ]
    return found


def _kueue_record(
    draft: StatusDraft, child: Child, evictions: WorkloadEvictions, number: int
) -> DisruptionRecord:
    return DisruptionRecord(
        child=child.name,
        kind=Disruption.KUEUE_PREEMPTION,
        reason=evictions.reason,
        message=f"Kueue evicted the Workload of {child.kind} {child.name} and suspended it: "
        f"{evictions.reason}: {evictions.message or 'no message'}",
        at=draft.now,
        id=f"{evictions.workload_uid}/{number}",
    )


def _hang(draft: StatusDraft, child: Child) -> DisruptionRecord | None:
    """A child whose trainer said it hung: recorded once per incarnation of the name."""
    if child.phase is not Phase.FAILED or child.reason not in HANG_REASONS:
        return None
    created = child.created_at.isoformat() if child.created_at else ""
    return DisruptionRecord(
        child=child.name,
        kind=Disruption.HANG,
        reason=child.reason,
        message=f"{child.kind} {child.name} hung: {child.message or 'no message'}",
        at=draft.now,
        id=f"{child.name}@{created}",
    )


def reason_of(record: DisruptionRecord) -> str:
    """The reason a run's events and conditions give for the disruption: Preempted, or
    the trainer's own for a hang (Stalled, CollectiveTimeout)."""
    return record.reason if record.kind is Disruption.HANG else PREEMPTED


def _this_incarnation(child: Child, pods: Sequence[PodState]) -> list[PodState]:
    """The pods of this child object, not of an earlier one of the same name (a disrupted
    attempt is created again under its name)."""
    if child.created_at is None:
        return list(pods)
    return [pod for pod in pods if pod.created_at is None or pod.created_at >= child.created_at]


def record_disruptions(
    draft: StatusDraft, spec: RLoopRunSpec, child: Child, found: Sequence[DisruptionRecord]
) -> None:
    """Write new disruptions into the iteration's record and the per-stage counts, with one
    Warning event each."""
    record = draft.record(child.iteration)
    draft.update_record(child.iteration, disruptions=(*record.disruptions, *found))
    stage = child.stage.value
    counts = dict(draft.status.disruptions)
    counts[stage] = counts.get(stage, 0) + len(found)
    draft.update(disruptions=counts)
    count = len(stage_disruptions(draft.record(child.iteration), draft.run.name, child))
    limit = spec.max_disruptions
    bound = "unset" if limit is None else str(limit)
    for disruption in found:
        verdict = (
            "it counts as a failed attempt"
            if limit is not None and count > limit
            else f"{child.kind} {child.name} resumes from the stage's latest checkpoint when it "
            "runs again, not counted against spec.maxRetries"
        )
        draft.event(
            "Warning",
            reason_of(disruption),
            f"{disruption.message}; disruption {count} of this stage "
            f"(spec.maxDisruptions {bound}): {verdict}",
            child.name,
        )


def stage_disruptions(
    record: IterationRecord, run_name: str, child: Child
) -> list[DisruptionRecord]:
    """The recorded disruptions of every attempt of `child`'s stage in its iteration."""
    base = child_name(run_name, child.iteration, child.stage, 0)
    return [d for d in record.disruptions if d.child == base or d.child.startswith(f"{base}-r")]


def beyond_limit(draft: StatusDraft, spec: RLoopRunSpec, child: Child) -> bool:
    """Whether the stage's disruptions now exceed spec.maxDisruptions (then they count)."""
    limit = spec.max_disruptions
    count = len(stage_disruptions(draft.record(child.iteration), draft.run.name, child))
    return limit is not None and count > limit


def attempt_disrupted(draft: StatusDraft, child: Child, observed: Observed) -> bool:
    """Whether the child's attempt lost its capacity: a pod of this incarnation taken away
    (for a finished child, however its controller then ended it), or, while Kueue holds it
    suspended, its Workload evicted."""
    if child.phase is Phase.PENDING and child.reason == "Suspended":
        return _latest(draft, child.iteration, child.name, Disruption.KUEUE_PREEMPTION) is not None
    return _hang(draft, child) is not None or _disrupted(
        _this_incarnation(child, observed.pods.get(child.name, ()))
    )


def _disrupted(pods: Sequence[PodState]) -> bool:
    return any(pod.disruption is not None for pod in pods)


def preempted(
    draft: StatusDraft, index: int, stage: Stage, name: str, waiting: str
) -> Blocker | None:
    """Progressing False (Preempted, or Stalled after a hang) while attempt `name`,
    disrupted, waits to run again; `waiting` says for what. None when the attempt was
    never disrupted."""
    latest = _latest(draft, index, name, None)
    if latest is None:
        return None
    return Blocker(
        reason_of(latest),
        f"{latest.message}; {stage.value} resumes from its latest checkpoint once {waiting}",
    )


def _latest(
    draft: StatusDraft, index: int, name: str, kind: Disruption | None
) -> DisruptionRecord | None:
    return next(
        (
            d
            for d in reversed(draft.record(index).disruptions)
            if d.child == name and (kind is None or d.kind is kind)
        ),
        None,
    )

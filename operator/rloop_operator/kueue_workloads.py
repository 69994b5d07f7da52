"""What Kueue says of a child it queues: how often it has evicted the child's Workload, and
why the last time. Pure; read from kueue.x-k8s.io/v1beta2 Workload objects.

Kueue preempts a child by evicting its Workload and suspending the child; the child's
controller then deletes its pods, and the child resumes (new pods, from the stage's latest
checkpoint) once Kueue admits it again. The child itself only says Suspended, as it does
while it first waits in its queue. The Workload tells the two apart:
`status.schedulingStats.evictions` counts every eviction so far, by reason (Kueue v0.19:
apis/kueue/v1beta2/workload_types.go, SchedulingStats), and its `Evicted` condition says
why the last one happened, e.g. "Preempted to accommodate a workload (UID: ...) due to
prioritization in the ClusterQueue" (after re-admission: "Previously: Preempted ...").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rloop_operator.launchers import ApiResource

WORKLOADS = ApiResource("kueue.x-k8s.io", "v1beta2", "workloads", "Workload")


@dataclass(frozen=True)
class WorkloadEvictions:
    """The evictions of one child's Workload so far."""

    workload_uid: str
    count: int
    reason: str  # the last eviction's, e.g. Preempted
    message: str


def evictions_by_child(workloads: Iterable[Mapping[str, Any]]) -> dict[str, WorkloadEvictions]:
    """{child name: its Workload's evictions} for the Workloads evicted at least once; a
    Workload's owner (its ownerReferences) is the job Kueue queues, which is our child."""
    found = {}
    for workload in workloads:
        metadata = workload.get("metadata") or {}
        status = workload.get("status") or {}
        stats: list[Mapping[str, Any]] = (status.get("schedulingStats") or {}).get(
            "evictions"
        ) or []
        count = sum(int(eviction.get("count") or 0) for eviction in stats)
        if not count:
            continue
        evicted: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or () if c.get("type") == "Evicted"), {}
        )
        # Once re-admitted, Evicted turns False with reason QuotaReserved ("Previously:
        # Preempted to ..."): then the reason is the counted one.
        reason = evicted.get("reason") if evicted.get("status") == "True" else None
        evictions = WorkloadEvictions(
            workload_uid=str(metadata.get("uid") or ""),
            count=count,
            reason=str(reason or stats[-1].get("reason") or "Evicted"),
            message=str(evicted.get("message") or ""),
        )
        for owner in metadata.get("ownerReferences") or ():
            found[str(owner.get("name"))] = evictions
    return found

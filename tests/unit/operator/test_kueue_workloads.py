"""What Kueue's Workloads say of the children it evicted (kueue.x-k8s.io/v1beta2 JSON)."""

from __future__ import annotations

from typing import Any

from rloop_operator.kueue_workloads import WorkloadEvictions, evictions_by_child

PREEMPTED = "Preempted to accommodate a workload (UID: 7) due to prioritization in the ClusterQueue"


def workload(
    owner: str, evictions: list[dict[str, Any]], conditions: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"pytorchjob-{owner}-1a2b3",
            "uid": f"wl-{owner}",
            "ownerReferences": [{"kind": "PyTorchJob", "name": owner, "uid": "x"}],
        },
        "status": {"schedulingStats": {"evictions": evictions}, "conditions": conditions},
    }


def test_evictions_are_counted_over_every_reason_with_the_last_ones_words() -> None:
    evicted = {"type": "Evicted", "status": "True", "reason": "Preempted", "message": PREEMPTED}
    stats = [
        {"reason": "Preempted", "underlyingCause": "InClusterQueue", "count": 2},
        {"reason": "PodsReadyTimeout", "underlyingCause": "", "count": 1},
    ]
    assert evictions_by_child([workload("demo-i00-rl", stats, [evicted])]) == {
        "demo-i00-rl": WorkloadEvictions("wl-demo-i00-rl", 3, "Preempted", PREEMPTED)
    }


def test_a_workload_never_evicted_names_no_child() -> None:
    admitted = {"type": "Admitted", "status": "True", "reason": "Admitted", "message": ""}
    assert evictions_by_child([workload("demo-i00-rl", [], [admitted])]) == {}
    assert evictions_by_child([{"metadata": {"name": "bare"}}]) == {}


def test_once_readmitted_the_reason_is_the_counted_one_not_quota_reserved() -> None:
    previously = {"type": "Evicted", "status": "False", "reason": "QuotaReserved",
                  "message": f"Previously: {PREEMPTED}"}  # fmt: skip
    stats = [{"reason": "Preempted", "underlyingCause": "", "count": 1}]
    [evictions] = evictions_by_child([workload("demo-i00-rl", stats, [previously])]).values()
    assert (evictions.count, evictions.reason) == (1, "Preempted")
    assert evictions.message == f"Previously: {PREEMPTED}"

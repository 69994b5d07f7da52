"""The pod watch's memory of pods Kubernetes took away, and how the reconciler adds them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rloop_operator.disrupted_pods import DisruptedPods, with_remembered
from rloop_operator.pods import PodDisruption, PodState

SELECTOR = "training.kubeflow.org/job-name=demo-i00-rl"
TARGET = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
          "message": "Eviction API: evicting"}  # fmt: skip


def pod(name: str, uid: str, namespace: str = "team-a", disrupted: bool = True) -> dict[str, Any]:
    labels = {"training.kubeflow.org/job-name": "demo-i00-rl", "rloop.io/run": "demo"}
    return {
        "metadata": {"name": name, "uid": uid, "namespace": namespace, "labels": labels},
        "status": {"phase": "Running", "conditions": [TARGET] if disrupted else []},
    }


def test_only_pods_being_taken_away_are_remembered_and_found_by_selector_and_namespace() -> None:
    memory = DisruptedPods()
    memory.remember(pod("demo-i00-rl-master-0", "u1"))
    memory.remember(pod("demo-i00-rl-worker-0", "u2", disrupted=False))
    memory.remember(pod("demo-i00-rl-master-0", "u3", namespace="team-b"))

    [found] = memory.selected("team-a", SELECTOR)

    assert (found.name, found.uid) == ("demo-i00-rl-master-0", "u1")
    assert memory.selected("team-a", "training.kubeflow.org/job-name=demo-i00-rl-r1") == []


def test_the_memory_keeps_the_latest_pods_up_to_its_limit() -> None:
    memory = DisruptedPods(limit=2)
    for uid in ("u1", "u2", "u3"):
        memory.remember(pod(f"p-{uid}", uid))
    assert [p.uid for p in memory.selected("team-a", SELECTOR)] == ["u2", "u3"]


def test_a_listed_pod_is_taken_as_listed_and_a_remembered_one_only_once_gone() -> None:
    listed = [PodState("demo-i00-rl-master-0", "Failed", uid="u1")]
    remembered = [PodState("demo-i00-rl-master-0", "Running", uid="u1"),
                  PodState("demo-i00-rl-worker-0", "Running", uid="u2")]  # fmt: skip
    assert with_remembered(listed, remembered) == [listed[0], replace(remembered[1], gone=True)]


def test_a_remembered_pod_gone_from_the_listing_no_longer_writes_though_last_seen_running() -> None:
    # An evicted pod last seen Running in its grace period, then deleted: the run must not
    # wait for it forever before it creates the attempt again.
    evicted = PodDisruption("EvictionByEvictionAPI", "Eviction API: evicting")
    last_seen = PodState(
        "demo-i00-rl-worker-0", "Running", "gpu-1", True, uid="u2", disruption=evicted
    )
    assert last_seen.may_write
    [gone] = with_remembered([], [last_seen])
    assert not gone.may_write
    assert gone.disruption == evicted  # still recorded as the attempt's disruption

"""Disruptions in plan(): an attempt whose pods Kubernetes took away (an eviction, a
preemption, a lost node) or that Kueue preempted is resumed, not counted as a failure;
spec.maxDisruptions bounds how many are free."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from rloop_operator.api import Condition
from rloop_operator.kueue_workloads import WorkloadEvictions
from rloop_operator.lifecycle import Disruption, Phase
from rloop_operator.planning.actions import CreateChild, DeleteChild, Plan
from rloop_operator.pods import PodDisruption, PodState

from tests.unit.operator.world import T0, World

pytestmark = pytest.mark.filterwarnings("error")
RL = "demo-i00-rl"
EVICTED = PodDisruption("EvictionByEvictionAPI", "Eviction API: evicting")
NODE_GONE = PodDisruption("DeletionByPodGC", "PodGC: node no longer exists")
KUEUE_SAYS = (
    "Preempted to accommodate a workload (UID: 42) due to prioritization in the ClusterQueue"
)


def pod(name: str, phase: str = "Running", **fields: object) -> PodState:
    return PodState(f"{RL}-{name}", phase, "gpu-1", uid=f"uid-{name}", created_at=T0, **fields)  # type: ignore[arg-type]


def running_attempt(world: World) -> None:
    world.step()
    world.children[RL] = replace(world.children[RL], phase=Phase.RUNNING)
    world.pods[RL] = (pod("master-0"), pod("worker-0"))
    world.step()


def progressing(world: World) -> Condition:
    return next(c for c in world.status.conditions if c.type == "Progressing")


def deleted(result: Plan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, DeleteChild)]


def created(result: Plan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, CreateChild)]


def test_an_evicted_pod_ends_its_attempt_which_is_recorded_as_a_disruption_not_a_failure() -> None:
    world = World(maxRetries=0)
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=EVICTED, deleting=True), pod("worker-0"))

    result = world.step()

    assert deleted(result) == [RL]
    [record] = world.status.iterations[0].disruptions
    assert (record.child, record.kind, record.reason, record.id) == (
        RL, Disruption.EVICTION, "EvictionByEvictionAPI", "uid-master-0",
    )  # fmt: skip
    assert record.message == (
        f"pod {RL}-master-0 on node gpu-1: EvictionByEvictionAPI: Eviction API: evicting"
    )
    assert world.status.iterations[0].failed_jobs == ()
    assert world.status.disruptions == {"Exploring": 1}
    assert (progressing(world).status, progressing(world).reason) == ("False", "Preempted")
    [event] = [e for e in world.events if e.reason == "Preempted"]
    assert event.type == "Warning" and event.message.startswith(record.message)
    assert "not counted against spec.maxRetries" in event.message


def test_the_disrupted_attempt_is_created_again_under_its_name_once_its_pods_have_stopped() -> None:
    world = World(maxRetries=0)
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=EVICTED, deleting=True), pod("worker-0"))
    world.step()
    world.children.pop(RL)  # the child is gone; the worker still stops

    assert created(world.step()) == []
    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Preempted")
    assert condition.message.endswith(
        f"once its earlier pods have stopped: {RL}-master-0 (Running, terminating), "
        f"{RL}-worker-0 (Running)"
    )
    world.pods[RL] = (pod("master-0", "Failed", disruption=EVICTED),)
    world.advance_clock(5)

    assert created(world.step()) == [RL]
    children = world.run_to_end()
    assert world.status.phase is Phase.SUCCEEDED
    assert not [name for name in children if re.search(r"-r[0-9]+$", name)], children
    assert world.status.iterations[0].failed_jobs == ()


def test_a_new_incarnation_waits_as_preempted_until_its_pods_start() -> None:
    world = World()
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=NODE_GONE), pod("worker-0"))
    world.step()
    world.gone(RL)
    world.advance_clock(5)
    world.step()  # created again
    later = T0 + timedelta(seconds=5)
    waiting = PodState(f"{RL}-master-0", "Pending", uid="uid-new", created_at=later)
    world.pods[RL] = (waiting,)

    world.step()

    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Preempted")
    assert "DeletionByPodGC" in condition.message and "once its pods start" in condition.message
    world.pods[RL] = (replace(waiting, phase="Running", node="gpu-2"),)
    world.step()
    assert (progressing(world).status, progressing(world).reason) == ("True", "Exploring")
    assert world.status.disruptions == {"Exploring": 1}


def test_a_child_that_failed_after_its_pod_was_taken_away_is_not_a_failed_attempt() -> None:
    world = World(maxRetries=0)
    running_attempt(world)
    world.finish(RL, ok=False)
    world.pods[RL] = (pod("master-0", "Failed", disruption=NODE_GONE), pod("worker-0", "Failed"))

    result = world.step()

    assert deleted(result) == [RL]
    assert world.status.phase is Phase.RUNNING
    assert world.status.iterations[0].failed_jobs == ()
    assert [d.kind for d in world.status.iterations[0].disruptions] == [Disruption.NODE_LOST]


def test_the_pods_of_an_earlier_incarnation_do_not_excuse_a_real_failure() -> None:
    world = World(maxRetries=1)
    running_attempt(world)
    world.pods[RL] = (pod("master-0", "Failed", disruption=EVICTED),)
    world.step()
    world.gone(RL)
    world.pods[RL] = (pod("master-0", "Failed", disruption=EVICTED),)  # remembered, gone
    world.advance_clock(5)
    world.step()  # created again, after the old pods
    world.finish(RL, ok=False)

    world.step()

    assert world.status.iterations[0].failed_jobs == (RL,)
    assert len(world.status.iterations[0].disruptions) == 1


def test_planning_again_on_the_same_observation_records_nothing_twice() -> None:
    world = World()
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=EVICTED, deleting=True), pod("worker-0"))
    world.step()
    world.children[RL] = replace(world.children[RL], deleting=False)  # a stale read

    world.step()

    assert len(world.status.iterations[0].disruptions) == 1
    assert world.status.disruptions == {"Exploring": 1}
    assert len([e for e in world.events if e.reason == "Preempted"]) == 1


def test_disruptions_beyond_max_disruptions_count_as_failed_attempts() -> None:
    world = World(maxDisruptions=0, maxRetries=1)
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=EVICTED), pod("worker-0"))

    result = world.step()

    assert deleted(result) == [RL]
    assert world.status.iterations[0].failed_jobs == (RL,)
    assert world.status.disruptions == {"Exploring": 1}
    [retrying] = [e for e in world.events if e.reason == "Retrying"]
    assert "failed (Preempted)" in retrying.message
    assert "beyond spec.maxDisruptions=0" in retrying.message
    [preempted] = [e for e in world.events if e.reason == "Preempted"]
    assert preempted.message.endswith("it counts as a failed attempt")


def test_a_child_kueue_preempted_waits_suspended_as_preempted_and_is_kept() -> None:
    world = World(maxRetries=0)
    running_attempt(world)
    world.children[RL] = replace(
        world.children[RL], phase=Phase.PENDING, reason="Suspended", message="suspended"
    )
    world.pods[RL] = ()
    world.kueue_evictions[RL] = WorkloadEvictions("wl-1", 1, "Preempted", KUEUE_SAYS)

    result = world.step()
    world.step()

    assert deleted(result) == []
    [record] = world.status.iterations[0].disruptions
    assert (record.kind, record.reason, record.id) == (
        Disruption.KUEUE_PREEMPTION, "Preempted", "wl-1/1",
    )  # fmt: skip
    assert KUEUE_SAYS in record.message
    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Preempted")
    assert condition.message.endswith(
        "Exploring resumes from its latest checkpoint once Kueue admits it again"
    )
    world.children[RL] = replace(world.children[RL], phase=Phase.RUNNING, reason="", message="")
    world.pods[RL] = (pod("master-0"), pod("worker-0"))
    world.step()
    assert (progressing(world).status, world.status.phase) == ("True", Phase.RUNNING)
    assert world.status.iterations[0].failed_jobs == ()


def test_a_child_first_waiting_in_its_queue_is_queued_not_preempted() -> None:
    world = World()
    world.step()
    world.children[RL] = replace(world.children[RL], reason="Suspended", message="suspended")

    world.step()

    assert progressing(world).reason == "Queued"
    assert world.status.iterations[0].disruptions == ()


def test_an_attempt_created_again_waits_for_capacity_beyond_the_start_timeout() -> None:
    world = World(resources={"startTimeout": "10m"})
    running_attempt(world)
    world.pods[RL] = (pod("master-0", disruption=NODE_GONE),)
    world.step()
    world.gone(RL)
    world.advance_clock(5)
    world.step()
    no_room = ("Unschedulable", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    world.pods[RL] = (PodState(f"{RL}-master-0", "Pending", stuck=no_room, uid="u2"),)
    world.advance_clock(3600)

    world.step()

    assert world.status.iterations[0].failed_jobs == ()
    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Preempted")
    assert "Insufficient nvidia.com/gpu" in condition.message


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("Stalled", "stalled at step 41 since 2026-01-01T00:00:00Z: no progress for 3605 s"),
        ("CollectiveTimeout", "rank 0: collective timeout (1800 s): silent: rank 1 for 1800 s"),
    ],
)
def test_a_phase_that_hung_is_resumed_under_its_name_without_counting(
    reason: str, message: str
) -> None:
    world = World(maxRetries=0)
    running_attempt(world)
    world.finish(RL, ok=False)
    world.children[RL] = replace(world.children[RL], reason=reason, message=message)

    result = world.step()

    assert deleted(result) == [RL]
    [record] = world.status.iterations[0].disruptions
    assert (record.kind, record.reason) == (Disruption.HANG, reason)
    assert record.message == f"PyTorchJob {RL} hung: {message}"
    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", reason)
    assert condition.message.startswith(record.message)
    assert [e.reason for e in world.events if e.type == "Warning"] == [reason]
    world.gone(RL)
    world.advance_clock(5)
    assert created(world.step()) == [RL]
    assert world.status.iterations[0].failed_jobs == ()


def test_a_lost_node_that_hung_the_other_ranks_is_one_disruption_not_two() -> None:
    world = World()
    running_attempt(world)
    world.finish(RL, ok=False)
    timeout = "rank 0: collective timeout (1800 s): silent: rank 1 for 1800 s"
    world.children[RL] = replace(world.children[RL], reason="CollectiveTimeout", message=timeout)
    world.pods[RL] = (pod("master-0", "Failed"), pod("worker-0", "Failed", disruption=NODE_GONE))

    world.step()

    assert [d.kind for d in world.status.iterations[0].disruptions] == [Disruption.NODE_LOST]

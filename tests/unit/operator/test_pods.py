"""What the pods of an attempt say, read from core/v1 Pod JSON as the API server serves it."""

from __future__ import annotations

from typing import Any

from rloop_operator.pods import (
    PodDisruption,
    PodState,
    not_started,
    pod_state,
    termination_messages,
    writers,
)

SCHEDULER_SAYS = (
    "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
)


def pod(
    name: str = "demo-i00-rl-master-0",
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
    states: list[dict[str, Any]] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    statuses = [{"name": f"c{i}", "state": state} for i, state in enumerate(states or [])]
    return {
        "metadata": {"name": name, **metadata},
        "status": {"phase": phase, "conditions": conditions or [], "containerStatuses": statuses},
    }


def test_an_unschedulable_pod_is_stuck_with_the_schedulers_message() -> None:
    unscheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": SCHEDULER_SAYS}  # fmt: skip
    assert pod_state(pod(conditions=[unscheduled])).stuck == ("Unschedulable", SCHEDULER_SAYS)


def test_a_container_that_cannot_be_created_is_stuck_with_the_kubelets_reason() -> None:
    for reason, message in [
        ("ImagePullBackOff", 'Back-off pulling image "trainer:v9"'),
        ("ErrImagePull", "manifest unknown"),
        ("CreateContainerConfigError", 'secret "s3-creds" not found'),
    ]:
        state = {"waiting": {"reason": reason, "message": message}}
        assert pod_state(pod(states=[state])).stuck == (reason, message)


def test_a_pod_on_its_normal_way_to_running_is_not_stuck() -> None:
    being_scheduled = pod(conditions=[{"type": "PodScheduled", "status": "False"}])
    creating = pod(states=[{"waiting": {"reason": "ContainerCreating"}}])
    assert pod_state(being_scheduled).stuck is None
    assert pod_state(creating).stuck is None


def test_terminated_containers_leave_their_exit_code_and_message() -> None:
    state = pod_state(
        pod(phase="Failed", states=[{"terminated": {"exitCode": 3, "message": "boom"}},
                                    {"terminated": {"exitCode": 0}}])
    )  # fmt: skip
    assert [(e.container, e.exit_code, e.message) for e in state.exits] == [
        ("c0", 3, "boom"), ("c1", 0, ""),
    ]  # fmt: skip


def test_messages_are_picked_by_whether_the_container_exited_zero() -> None:
    pods = [
        PodState("a", "Running"),
        pod_state(pod("b", "Failed", states=[{"terminated": {"exitCode": 2, "message": "bad"}}])),
        pod_state(pod("c", "Succeeded", states=[{"terminated": {"exitCode": 0, "message": "ok"}}])),
    ]
    assert termination_messages(pods, succeeded=True) == ["ok"]
    assert termination_messages(pods, succeeded=False) == ["bad"]


def test_an_attempt_has_started_when_every_expected_pod_runs() -> None:
    running = [PodState("m", "Running"), PodState("w", "Running")]
    assert not_started(running, expected=2) is None
    assert not_started(running[:1], expected=2) is not None


def test_an_attempt_with_a_finished_pod_has_started() -> None:
    # TrainJob's Job replaces a failed pod in place; the replacement is no start problem.
    assert not_started([PodState("m", "Failed"), PodState("m2", "Pending")], expected=2) is None


def test_a_stuck_pod_names_the_cause_and_the_pod() -> None:
    pods = [PodState("w", "Pending", stuck=("ImagePullBackOff", "Back-off")),
            PodState("m", "Running")]  # fmt: skip
    waiting = not_started(pods, expected=2)
    assert waiting is not None
    assert (waiting.reason, waiting.message, waiting.stuck) == (
        "ImagePullBackOff", "pod w: Back-off", True,
    )  # fmt: skip


def test_pods_not_created_or_still_pending_are_waited_for_without_being_stuck() -> None:
    missing = not_started([PodState("m", "Running")], expected=2)
    pending = not_started([PodState("m", "Running"), PodState("w", "Pending")], expected=2)
    assert missing is not None and pending is not None
    assert (missing.reason, missing.message, missing.stuck) == (
        "PodsNotCreated", "1 of 2 pods exist", False,
    )  # fmt: skip
    assert (pending.reason, pending.message, pending.stuck) == (
        "PodsPending", "pods not running yet: w", False,
    )  # fmt: skip


def test_only_finished_or_unbound_pods_cannot_write() -> None:
    node = "gpu-node-1"
    pods = [
        PodState("done", "Succeeded", node),
        PodState("failed", "Failed", node, deleting=True),
        PodState("running", "Running", node),
        PodState("stopping", "Running", node, deleting=True),
        PodState("waiting", "Pending", node),
        PodState("lost", "Unknown", node),
        PodState("unscheduled", "Pending"),
    ]
    assert writers(pods) == [
        "lost (Unknown)", "running (Running)", "stopping (Running, terminating)",
        "waiting (Pending)",
    ]  # fmt: skip


def test_a_bound_pod_being_deleted_may_still_write() -> None:
    deleting = pod(phase="Running", deletionTimestamp="2026-01-01T00:00:00Z")
    deleting["spec"] = {"nodeName": "gpu-node-1"}
    state = pod_state(deleting)
    assert (state.node, state.deleting, state.may_write) == ("gpu-node-1", True, True)


def test_a_pod_kubernetes_is_taking_away_says_who_and_why() -> None:
    target = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
              "message": "PodGC: node no longer exists"}  # fmt: skip
    state = pod_state(pod(phase="Running", conditions=[target], uid="u-1"))
    assert state.disruption == PodDisruption("DeletionByPodGC", "PodGC: node no longer exists")
    assert state.uid == "u-1"


def test_a_pod_the_kubelet_evicted_under_pressure_is_disrupted_without_the_condition() -> None:
    evicted = pod(phase="Failed")
    evicted["status"] |= {"reason": "Evicted", "message": "The node was low on resource: memory."}
    assert pod_state(evicted).disruption == PodDisruption(
        "Evicted", "The node was low on resource: memory."
    )


def test_a_pod_that_only_failed_or_whose_disruption_was_withdrawn_is_not_disrupted() -> None:
    withdrawn = {"type": "DisruptionTarget", "status": "False", "reason": "PreemptionByScheduler"}
    assert pod_state(pod(phase="Failed")).disruption is None
    assert pod_state(pod(phase="Running", conditions=[withdrawn])).disruption is None

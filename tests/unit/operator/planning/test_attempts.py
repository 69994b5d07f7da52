"""Attempts and their pods in plan(): stuck children, queued children, the start timeout,
one writer per stage, and which pods the reconciler reads."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rloop_operator.api import Condition
from rloop_operator.lifecycle import Phase
from rloop_operator.planning.actions import CreateChild, DeleteChild, Plan
from rloop_operator.planning.attempts import pods_to_read
from rloop_operator.pods import Exit, PodState
from rloop_trainer.termination import failure_message

from tests.unit.operator.world import World

pytestmark = pytest.mark.filterwarnings("error")
RL = "demo-i00-rl"
SCHEDULER_SAYS = "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
UNSCHEDULABLE = PodState(f"{RL}-master-0", "Pending", stuck=("Unschedulable", SCHEDULER_SAYS))
NODE = "gpu-node-1"
RUNNING = PodState(f"{RL}-master-0", "Running", NODE)
BAD_INPUT = "rloop-trainer dapo: s3://b/train.parquet does not exist; check data.train"


def progressing(world: World) -> Condition:
    return next(c for c in world.status.conditions if c.type == "Progressing")


def created(result: Plan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, CreateChild)]


def warnings(world: World, reason: str) -> int:
    return sum(1 for e in world.events if e.type == "Warning" and e.reason == reason)


def test_a_child_whose_pods_cannot_be_scheduled_stops_the_run_claiming_progress() -> None:
    world = World()
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)

    result = world.step()

    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Unschedulable")
    assert condition.message == f"PyTorchJob {RL}: pod {RL}-master-0: {SCHEDULER_SAYS}"
    assert (world.status.phase, world.status.reason) == (Phase.RUNNING, "Unschedulable")
    assert world.status.message == condition.message
    assert result.requeue_after is not None and result.requeue_after <= 10
    world.step()
    assert warnings(world, "Unschedulable") == 1


def test_the_run_progresses_again_once_the_pods_run() -> None:
    world = World()
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)
    world.step()
    world.pods[RL] = (RUNNING,)

    world.step()

    condition = progressing(world)
    assert (condition.status, condition.reason) == ("True", "Exploring")
    assert (world.status.reason, world.status.message) == (None, None)


def test_a_missing_secret_shows_as_the_kubelets_create_container_config_error() -> None:
    world = World()
    world.step()
    missing = ("CreateContainerConfigError", 'secret "s3-creds" not found')
    world.pods[RL] = (PodState(f"{RL}-master-0", "Pending", stuck=missing),)

    world.step()

    assert progressing(world).reason == "CreateContainerConfigError"
    assert 'secret "s3-creds" not found' in progressing(world).message


def test_a_child_kueue_holds_is_queued_not_stuck_and_never_times_out() -> None:
    world = World(resources={"startTimeout": "30m"})
    world.step()
    world.children[RL] = replace(
        world.children[RL], reason="Suspended", message="PyTorchJob demo-i00-rl is suspended."
    )
    world.pods[RL] = ()
    world.advance_clock(5 * 3600)

    result = world.step()

    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "Queued")
    assert "Kueue" in condition.message and "is suspended." in condition.message
    assert not [a for a in result.actions if isinstance(a, DeleteChild)]
    assert world.status.iterations[0].failed_jobs == ()


def test_pods_that_do_not_start_in_time_fail_the_attempt_saying_what_they_waited_for() -> None:
    world = World(resources={"startTimeout": "30m"}, maxRetries=2)
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)
    world.advance_clock(29 * 60)
    assert not [a for a in world.step().actions if isinstance(a, DeleteChild)]
    world.advance_clock(60)

    result = world.step()

    assert DeleteChild(RL, "PyTorchJob") in result.actions
    assert world.status.iterations[0].failed_jobs == (RL,)
    [retrying] = [e for e in world.events if e.reason == "Retrying"]
    assert "StartTimeout" in retrying.message
    assert "startTimeout=30m" in retrying.message and SCHEDULER_SAYS in retrying.message
    assert world.status.phase is Phase.RUNNING


def test_the_last_timed_out_attempt_fails_the_run() -> None:
    world = World(resources={"startTimeout": "1m"}, maxRetries=0)
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)
    world.advance_clock(61)

    world.step()

    assert world.status.phase is Phase.FAILED
    assert "startTimeout=1m" in (world.status.message or "")


def test_queued_time_does_not_count_toward_the_start_timeout() -> None:
    world = World(resources={"startTimeout": "30m"})
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)
    world.advance_clock(3600)  # queued for an hour, then admitted
    world.children[RL] = replace(world.children[RL], admitted_at=world.now)
    world.advance_clock(29 * 60)
    assert not [a for a in world.step().actions if isinstance(a, DeleteChild)]
    world.advance_clock(60)
    assert DeleteChild(RL, "PyTorchJob") in world.step().actions


def test_a_start_timeout_of_zero_never_fails_an_attempt() -> None:
    world = World(resources={"startTimeout": "0"})
    world.step()
    world.pods[RL] = (UNSCHEDULABLE,)
    world.advance_clock(30 * 24 * 3600)
    assert not [a for a in world.step().actions if isinstance(a, DeleteChild)]
    assert progressing(world).reason == "Unschedulable"


def test_every_node_of_a_distributed_phase_must_start() -> None:
    world = World(resources={"nodes": 2, "startTimeout": "10m"})
    world.step()
    world.pods[RL] = (RUNNING, PodState(f"{RL}-worker-0", "Pending"))
    world.advance_clock(11 * 60)
    assert DeleteChild(RL, "PyTorchJob") in world.step().actions
    assert "pods not running yet: demo-i00-rl-worker-0" in world.events[-1].message


def test_a_retry_waits_until_the_failed_attempts_pods_stopped() -> None:
    world = World()
    world.step()
    world.finish(RL, ok=False, message="master exited 1")
    world.pods[RL] = (
        PodState(f"{RL}-master-0", "Failed", NODE),
        PodState(f"{RL}-worker-0", "Running", NODE, deleting=True),
    )
    world.step()
    world.advance_clock(60)  # past the backoff

    waiting = world.step()

    assert created(waiting) == []
    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "PreviousAttemptRunning")
    assert f"{RL}-worker-0 (Running, terminating)" in condition.message
    assert waiting.requeue_after == 2.0
    world.pods[RL] = (PodState(f"{RL}-master-0", "Failed", NODE),)  # kept for `kubectl logs`
    assert created(world.step()) == [f"{RL}-r1"]


def test_a_resumed_child_waits_for_the_pods_of_its_deleted_incarnation() -> None:
    world = World(suspend=True)
    world.step()
    world.spec["suspend"] = False
    world.pods[RL] = (PodState(f"{RL}-abcde", "Running", NODE, deleting=True),)
    assert created(world.step()) == []
    world.pods[RL] = ()
    assert created(world.step()) == [RL]


def test_the_reconciler_reads_the_pods_of_the_active_attempt_only_while_it_exists() -> None:
    world = World()
    world.step()
    assert pods_to_read(world.view(), list(world.children.values())) == {RL: world.status.stage}
    world.finish(RL, ok=False)
    world.step()
    stage = world.status.stage
    assert pods_to_read(world.view(), list(world.children.values())) == {
        RL: stage, f"{RL}-r1": stage,
    }  # fmt: skip
    world.advance_clock(60)
    world.step()
    assert pods_to_read(world.view(), list(world.children.values())) == {f"{RL}-r1": stage}


def test_a_finished_run_reads_no_pods() -> None:
    world = World()
    world.run_to_end()
    world.children = {n: replace(c, phase=Phase.SUCCEEDED) for n, c in world.children.items()}
    assert pods_to_read(world.view(), list(world.children.values())) == {}


def permanently_failed_pod(name: str) -> PodState:
    message = failure_message(BAD_INPUT, "InvalidInput", permanent=True).decode()
    return PodState(name, "Failed", NODE, exits=(Exit("node", 3, message),))


def test_a_trainjob_whose_pod_failed_for_good_is_deleted_and_the_run_fails_at_once() -> None:
    # Its Job would replace the pod in place (backoffLimit 6), each time on every node.
    world = World(maxRetries=3, resources={"launcher": "trainjob", "nodes": 2})
    world.step()
    world.children[RL] = replace(world.children[RL], phase=Phase.RUNNING)
    world.pods[RL] = (permanently_failed_pod(f"{RL}-node-0-0-x1"), RUNNING)

    result = world.step()

    assert [a.name for a in result.actions if isinstance(a, DeleteChild)] == [RL]
    assert (world.status.phase, world.status.reason) == (Phase.FAILED, "InvalidInput")
    assert world.status.message == BAD_INPUT
    assert world.status.iterations[0].failed_jobs == (RL,)
    assert created(result) == []


def test_a_pytorchjob_whose_pod_failed_is_left_to_its_controller() -> None:
    # backoffLimit 0: the training operator fails it at once and keeps the pod for logs.
    world = World(maxRetries=3)
    world.step()
    world.children[RL] = replace(world.children[RL], phase=Phase.RUNNING)
    world.pods[RL] = (permanently_failed_pod(f"{RL}-master-0"),)

    result = world.step()

    assert not [a for a in result.actions if isinstance(a, DeleteChild)]
    assert world.status.phase is Phase.RUNNING


def test_a_failed_attempt_keeps_the_run_saying_why_until_its_retry_starts() -> None:
    world = World()
    world.step()
    unreachable = "rloop-trainer dapo: s3://bucket/rloop is unreachable after 5 tries"
    world.children[RL] = replace(
        world.children[RL], phase=Phase.FAILED, reason="StoreUnavailable", message=unreachable
    )

    world.step()

    condition = progressing(world)
    assert (condition.status, condition.reason) == ("False", "StoreUnavailable")
    assert condition.message == (
        f"PyTorchJob {RL} failed (StoreUnavailable): {unreachable}; retry 1/2 in 10s"
    )
    world.advance_clock(11)
    assert created(world.step()) == [f"{RL}-r1"]
    assert (progressing(world).status, progressing(world).reason) == ("True", "Exploring")

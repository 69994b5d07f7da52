"""What a child's status says, read the way the training operator and Job controller write it."""

from __future__ import annotations

from typing import Any

from rloop_operator.api import Stage
from rloop_operator.children import ChildKind, ChildPhase, observe_child


def pytorchjob(conditions: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    return {
        "kind": "PyTorchJob",
        "metadata": {
            "name": "demo-i00-rl",
            "labels": {"rloop.io/run": "demo", "rloop.io/iteration": "0", "rloop.io/stage": "rl"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
            **metadata,
        },
        "status": {"conditions": conditions},
    }


def cond(type_: str, status: str = "True", **extra: str) -> dict[str, str]:
    return {"type": type_, "status": status, "lastTransitionTime": "2026-01-01T01:00:00Z", **extra}


def test_a_pytorchjob_succeeded_anywhere_in_its_conditions_is_succeeded() -> None:
    # The training operator appends; Succeeded need not be the last condition.
    child = observe_child(
        pytorchjob([cond("Created"), cond("Succeeded"), cond("Running", "False")])
    )
    assert child is not None
    assert child.phase is ChildPhase.SUCCEEDED
    assert child.kind is ChildKind.PYTORCHJOB
    assert child.stage is Stage.EXPLORING and child.iteration == 0
    assert child.finished_at is not None and child.finished_at.hour == 1


def test_a_failed_pytorchjob_carries_the_reason_and_message() -> None:
    child = observe_child(
        pytorchjob(
            [
                cond("Running", "False"),
                cond(
                    "Failed",
                    reason="PyTorchJobFailed",
                    message="pod demo-i00-rl-master-0 OOMKilled",
                ),
            ]
        )
    )
    assert child is not None and child.phase is ChildPhase.FAILED
    assert child.reason == "PyTorchJobFailed" and "OOMKilled" in child.message


def test_a_running_condition_that_is_false_is_not_running() -> None:
    child = observe_child(pytorchjob([cond("Created"), cond("Running", "False")]))
    assert child is not None and child.phase is ChildPhase.PENDING


def test_a_batch_job_is_finished_by_its_complete_condition() -> None:
    job = pytorchjob([cond("Complete")])
    job["kind"] = "Job"
    job["metadata"]["labels"]["rloop.io/stage"] = "filter"
    child = observe_child(job)
    assert child is not None and child.phase is ChildPhase.SUCCEEDED
    assert child.kind is ChildKind.JOB and child.stage is Stage.FILTERING


def test_a_batch_job_with_active_pods_is_running() -> None:
    job = pytorchjob([])
    job["kind"] = "Job"
    job["status"]["active"] = 1
    child = observe_child(job)
    assert child is not None and child.phase is ChildPhase.RUNNING


def test_a_child_being_deleted_says_so() -> None:
    child = observe_child(pytorchjob([], deletionTimestamp="2026-01-01T02:00:00Z"))
    assert child is not None and child.deleting


def test_objects_without_our_labels_are_not_children() -> None:
    assert observe_child({"kind": "Job", "metadata": {"name": "x", "labels": {}}}) is None

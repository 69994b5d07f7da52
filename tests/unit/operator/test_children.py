"""What a child's status says, read the way its controller writes it; the names of children."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rloop_operator.children import (
    DNS_1035_LABEL,
    MAX_RUN_NAME,
    RUN_NAME_NOT_DNS_1035,
    RUN_NAME_TOO_LONG,
    child_name,
    observe_child,
    run_name_problem,
)
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.stages import STAGES, launchers_able_to_run


def child(kind: str, status: dict[str, Any], slug: str = "rl", **metadata: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": f"demo-i00-{slug}",
            "labels": {"rloop.io/run": "demo", "rloop.io/iteration": "0", "rloop.io/stage": slug},
            "creationTimestamp": "2026-01-01T00:00:00Z",
            **metadata,
        },
        "status": status,
    }


def pytorchjob(conditions: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    return child("PyTorchJob", {"conditions": conditions}, **metadata)


def cond(type_: str, status: str = "True", **extra: str) -> dict[str, str]:
    return {"type": type_, "status": status, "lastTransitionTime": "2026-01-01T01:00:00Z", **extra}


def test_a_pytorchjob_succeeded_anywhere_in_its_conditions_is_succeeded() -> None:
    # The training operator appends; Succeeded need not be the last condition.
    observed = observe_child(
        pytorchjob([cond("Created"), cond("Succeeded"), cond("Running", "False")])
    )
    assert observed is not None
    assert observed.phase is Phase.SUCCEEDED
    assert observed.kind == "PyTorchJob"
    assert observed.stage is Stage.EXPLORING and observed.iteration == 0
    assert observed.finished_at is not None and observed.finished_at.hour == 1


def test_a_failed_pytorchjob_carries_the_reason_and_message() -> None:
    observed = observe_child(
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
    assert observed is not None and observed.phase is Phase.FAILED
    assert observed.reason == "PyTorchJobFailed" and "OOMKilled" in observed.message


def test_a_running_condition_that_is_false_is_not_running() -> None:
    observed = observe_child(pytorchjob([cond("Created"), cond("Running", "False")]))
    assert observed is not None and observed.phase is Phase.PENDING


def test_a_batch_job_is_finished_by_its_complete_condition() -> None:
    observed = observe_child(child("Job", {"conditions": [cond("Complete")]}, slug="filter"))
    assert observed is not None and observed.phase is Phase.SUCCEEDED
    assert observed.kind == "Job" and observed.stage is Stage.FILTERING


def test_a_batch_job_with_active_pods_is_running() -> None:
    observed = observe_child(child("Job", {"active": 1}, slug="filter"))
    assert observed is not None and observed.phase is Phase.RUNNING


# Conditions as Kubeflow Trainer v2.2.1 and v2.3.0 write them: Complete and Failed copied from the
# JobSet's Completed/Failed (reasons AllJobsCompleted, FailedJobs), Suspended while suspended.
def test_a_trainjob_is_finished_by_its_complete_condition() -> None:
    complete = cond("Complete", reason="AllJobsCompleted", message="jobset completed successfully")
    observed = observe_child(child("TrainJob", {"conditions": [complete]}))
    assert observed is not None and observed.phase is Phase.SUCCEEDED
    assert observed.kind == "TrainJob" and observed.finished_at is not None


def test_a_failed_trainjob_carries_the_jobset_reason_and_message() -> None:
    failed = cond(
        "Failed", reason="FailedJobs", message="jobset failed due to one or more job failures"
    )
    observed = observe_child(child("TrainJob", {"conditions": [failed]}))
    assert observed is not None and observed.phase is Phase.FAILED
    assert (observed.reason, observed.message) == (
        "FailedJobs",
        "jobset failed due to one or more job failures",
    )


def test_a_suspended_trainjob_is_pending_with_reason_suspended_and_its_message() -> None:
    suspended = cond("Suspended", reason="Suspended", message="TrainJob is suspended")
    status = {"conditions": [suspended], "jobsStatus": [{"name": "node", "active": 0}]}
    observed = observe_child(child("TrainJob", status))
    assert observed is not None and observed.phase is Phase.PENDING
    assert (observed.reason, observed.message) == ("Suspended", "TrainJob is suspended")


def test_a_resumed_trainjob_with_an_active_job_is_running() -> None:
    resumed = cond("Suspended", "False", reason="Resumed", message="TrainJob is resumed")
    status = {"conditions": [resumed], "jobsStatus": [{"name": "node", "active": 1}]}
    observed = observe_child(child("TrainJob", status))
    assert observed is not None and observed.phase is Phase.RUNNING


def test_a_child_being_deleted_says_so() -> None:
    observed = observe_child(pytorchjob([], deletionTimestamp="2026-01-01T02:00:00Z"))
    assert observed is not None and observed.deleting


def test_objects_without_our_labels_or_of_unknown_kinds_are_not_children() -> None:
    assert observe_child({"kind": "Job", "metadata": {"name": "x", "labels": {}}}) is None
    assert observe_child(child("MPIJob", {})) is None


def _longest_names(run_name: str) -> list[str]:
    """Every name derived from the last retry of the last iteration, on every launcher."""
    names = []
    for info in STAGES:
        name = child_name(run_name, 98, info.stage, 10)
        names += [
            name + launcher.longest_derived_suffix for launcher in launchers_able_to_run(info)
        ]
    return names


def test_a_run_name_of_the_maximum_length_gives_valid_names_everywhere() -> None:
    longest = "r" * MAX_RUN_NAME
    assert run_name_problem(longest) is None
    for name in _longest_names(longest):
        assert re.match(DNS_1035_LABEL, name) and len(name) <= 63, name


def test_the_maximum_run_name_length_is_tight() -> None:
    assert MAX_RUN_NAME == 33  # the RFT TrainJob: <run>-i98-rft-r10 + -node-0-1023-abcde
    assert max(len(name) for name in _longest_names("r" * (MAX_RUN_NAME + 1))) == 64
    assert run_name_problem("r" * (MAX_RUN_NAME + 1)) == RUN_NAME_TOO_LONG


@pytest.mark.parametrize("name", ["qwen2.5-math", "7b-run", "Qwen", "run-", "run_1"])
def test_a_run_name_that_is_not_a_dns_1035_label_is_refused(name: str) -> None:
    assert run_name_problem(name) == RUN_NAME_NOT_DNS_1035


def test_child_names_carry_iteration_stage_and_retry() -> None:
    assert child_name("demo", 3, Stage.FILTERING, 0) == "demo-i03-filter"
    assert child_name("demo", 12, Stage.CONSOLIDATING, 10) == "demo-i12-rft-r10"


def test_a_child_kueue_admitted_knows_when_its_suspension_ended() -> None:
    observed = observe_child(
        child("Job", {"conditions": [cond("Suspended", "False", reason="JobResumed")]}, "filter")
    )
    assert observed is not None and observed.admitted_at is not None
    assert observed.admitted_at.hour == 1
    never_queued = observe_child(pytorchjob([cond("Running")]))
    assert never_queued is not None and never_queued.admitted_at is None

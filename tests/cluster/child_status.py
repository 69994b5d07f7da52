"""The status a training operator, Kubeflow Trainer or the Job controller would write, as
pure functions.

PyTorchJob conditions follow Kubeflow training-operator v1.9.4
(pkg/controller.v1/pytorch/pytorchjob_controller.go, pkg/util/status.go): reasons are the
kind followed by Created/Running/Succeeded/Failed, and a finished job turns Running False.
TrainJob status follows Kubeflow Trainer v2.2.1, unchanged in v2.3.0
(pkg/controller/trainjob_controller.go, pkg/runtime/framework/plugins/jobset/jobset.go):
jobsStatus mirrors the JobSet's replicated Job `node`; Complete and Failed are the JobSet's
Completed and Failed conditions renamed, with the reasons and messages of JobSet v0.11.1 and
v0.12.0 alike (pkg/constants/constants.go).
Job conditions follow kube-controller-manager since 1.31, whose API validation refuses a
Complete condition without SuccessCriteriaMet and a Failed one without FailureTarget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Outcome = Literal["Succeeded", "Failed"]


def decide_outcome(
    failures: Mapping[str, int], failed_so_far: Mapping[str, int], child_name: str
) -> tuple[Outcome, str | None]:
    """Fail a child whose name contains a fragment of `failures` still owed failures.

    `failures["explore"] = 1` fails the first child named like "*explore*" once; the second
    element of the result is the fragment charged with the failure, None on success.
    """
    for fragment, times in failures.items():
        if fragment in child_name and failed_so_far.get(fragment, 0) < times:
            return "Failed", fragment
    return "Succeeded", None


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


def pytorchjob_running_status(name: str, now: str) -> dict[str, Any]:
    """Status of a PyTorchJob whose single Master pod runs."""
    created = f"PyTorchJob {name} is created."
    running = f"PyTorchJob {name} is running."
    return {
        "conditions": [
            _condition("Created", "True", "PyTorchJobCreated", created, now),
            _condition("Running", "True", "PyTorchJobRunning", running, now),
        ],
        "replicaStatuses": {"Master": {"active": 1}},
        "startTime": now,
    }


def pytorchjob_finished_status(
    name: str, running: Mapping[str, Any], outcome: Outcome, now: str
) -> dict[str, Any]:
    """Status of a PyTorchJob whose Master pod ended with `outcome`, from its running status."""
    kept = [
        {**condition, "status": "False"} if condition["type"] == "Running" else condition
        for condition in running.get("conditions", [])
        if condition["type"] not in ("Succeeded", "Failed")
    ]
    if outcome == "Succeeded":
        message = f"PyTorchJob {name} is successfully completed."
        replicas = {"Master": {"succeeded": 1}}
    else:
        message = f"PyTorchJob {name} is failed because 1 Master replica(s) failed."
        replicas = {"Master": {"failed": 1}}
    final = _condition(outcome, "True", f"PyTorchJob{outcome}", message, now)
    return {
        **running,
        "conditions": [*kept, final],
        "replicaStatuses": replicas,
        "completionTime": now,
    }


def _trainjob_jobs_status(**counts: int) -> list[dict[str, Any]]:
    zero = {"ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
    return [{"name": "node", **zero, **counts}]


def trainjob_running_status(name: str, now: str) -> dict[str, Any]:
    """Status of a TrainJob whose JobSet's single `node` Job has its pods up."""
    return {"jobsStatus": _trainjob_jobs_status(active=1, ready=1)}


def trainjob_finished_status(
    name: str, running: Mapping[str, Any], outcome: Outcome, now: str
) -> dict[str, Any]:
    """Status of a TrainJob whose JobSet ended with `outcome`, from its running status."""
    if outcome == "Succeeded":
        condition = ("Complete", "AllJobsCompleted", "jobset completed successfully")
        jobs = _trainjob_jobs_status(succeeded=1)
    else:
        condition = ("Failed", "FailedJobs", "jobset failed due to one or more job failures")
        jobs = _trainjob_jobs_status(failed=1)
    kind, reason, message = condition
    final = {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
    return {**running, "conditions": [*running.get("conditions", []), final], "jobsStatus": jobs}


def job_finished_status(started: Mapping[str, Any], outcome: Outcome, now: str) -> dict[str, Any]:
    """Status of a one-pod Job that ended with `outcome`, from the controller's started status."""
    conditions = list(started.get("conditions", []))
    if outcome == "Succeeded":
        reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
        conditions += [
            _job_condition("SuccessCriteriaMet", reason, message, now),
            _job_condition("Complete", reason, message, now),
        ]
        counts = {"succeeded": 1, "completionTime": now}
    else:
        reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        conditions += [
            _job_condition("FailureTarget", reason, message, now),
            _job_condition("Failed", reason, message, now),
        ]
        counts = {"failed": 1}
    return {**started, "conditions": conditions, "active": 0, "ready": 0, **counts}


def _job_condition(kind: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def is_finished(status: Mapping[str, Any]) -> bool:
    """True once a PyTorchJob, TrainJob or Job carries a terminal condition with status True."""
    terminal = {"Succeeded", "Failed", "Complete"}
    return any(
        c.get("type") in terminal and c.get("status") == "True"
        for c in status.get("conditions") or []
    )

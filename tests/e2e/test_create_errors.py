"""Children the API server refuses to create, on a real API server: the run shows the
API's answer on its Blocked condition and in a Warning event, retries, and goes on once
the cause is gone. (RBAC and a missing CRD: test_operator_process.py.)"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import child_names, eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import RUN, STORE, example_without_validation

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


def blocked_by(plane: ControlPlane, namespace: str, reason_prefix: str) -> dict[str, Any] | None:
    status = run_status(plane, namespace, RUN)
    condition = next((c for c in status.get("conditions", []) if c["type"] == "Blocked"), None)
    if (
        condition
        and condition["status"] == "True"
        and condition["reason"].startswith(reason_prefix)
    ):
        return condition
    return None


def warning_saying(plane: ControlPlane, namespace: str, reason: str, text: str) -> str:
    """The first Warning event with `reason` whose message has `text`, once posted (the
    reconciler posts it just after the status write that the test saw first)."""

    def posted() -> str | None:
        out = plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return next(
            (
                e["message"]
                for e in json.loads(out)["items"]
                if (e["type"], e["reason"]) == ("Warning", reason) and text in e["message"]
            ),
            None,
        )

    return eventually(posted, 30, f"a Warning event {reason} saying {text!r}")


def test_a_quota_that_refuses_the_filter_job_blocks_the_run_until_it_is_lifted(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs"},
             "spec": {"hard": {"count/jobs.batch": "0"}}}  # fmt: skip
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(quota))
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
        control_plane.kubectl(
            "apply", "-n", namespace, "-f", "-", stdin=example_without_validation()
        )
        condition = eventually(
            lambda: blocked_by(control_plane, namespace, "CreateForbidden"),
            60,
            "the refused filter Job on the Blocked condition",
        )
        assert "refused to create Job tiny-i00-filter (403 Forbidden)" in condition["message"]
        assert "exceeded quota: no-jobs" in condition["message"]
        warning_saying(control_plane, namespace, "CreateForbidden", "exceeded quota: no-jobs")
        status = run_status(control_plane, namespace, RUN)
        assert (status["phase"], status["stage"]) == ("Pending", "Filtering")
        control_plane.kubectl("delete", "resourcequota", "no-jobs", "-n", namespace)
        wait_for_phase(control_plane, namespace, RUN, "Succeeded", 240)


def denied(plane: ControlPlane, namespace: str) -> bool:
    """Whether a PyTorchJob is refused now (asked with a server-side dry run)."""
    probe = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
             "metadata": {"name": "probe", "namespace": namespace},
             "spec": {"pytorchReplicaSpecs": {}}}  # fmt: skip
    try:
        plane.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
    except KubectlError as refused:
        return "frozen" in str(refused)
    return False


@pytest.fixture()
def frozen_pytorchjobs(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """A ValidatingAdmissionPolicy that denies PyTorchJobs in `namespace`; its message."""
    message = "PyTorchJobs are frozen during the cluster upgrade"
    name = f"freeze-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["kubeflow.org"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pytorchjobs"],
            }]},
            "validations": [{"expression": "false", "message": message}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }  # fmt: skip
    for document in (policy, binding):
        control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(document))
    eventually(lambda: denied(control_plane, namespace), 60, "the policy to be in force")
    try:
        yield message
    finally:
        control_plane.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
            "--ignore-not-found",
        )  # fmt: skip


def test_an_admission_policy_that_denies_the_child_blocks_the_run_until_it_is_removed(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, frozen_pytorchjobs: str
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
        control_plane.kubectl(
            "apply", "-n", namespace, "-f", "-", stdin=example_without_validation()
        )
        condition = eventually(
            lambda: blocked_by(control_plane, namespace, "Create"),
            60,
            "the denied PyTorchJob on the Blocked condition",
        )
        assert "refused to create PyTorchJob tiny-i00-rl" in condition["message"]
        assert frozen_pytorchjobs in condition["message"]
        warning_saying(control_plane, namespace, condition["reason"], frozen_pytorchjobs)
        assert child_names(control_plane, namespace) == []
        name = f"freeze-{namespace}"
        control_plane.kubectl("delete", "validatingadmissionpolicybinding", name)
        wait_for_phase(control_plane, namespace, RUN, "Succeeded", 240)

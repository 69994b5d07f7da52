"""Edits of a run that exists, on a real API server: an edit the operator cannot act on
holds the run without killing its child; edits that remove a finished run's cause
reopen it; fields of a newer CRD are ignored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import child_names, eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import EXAMPLE, RUN, STORE, example_without_validation

pytestmark = pytest.mark.cluster
CRD = EXAMPLE.parents[1] / "crds" / "rlooprun.yaml"


@pytest.fixture(autouse=True)
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


def example(**spec: Any) -> str:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["spec"].update(spec)
    return json.dumps(document)


def patch(plane: ControlPlane, namespace: str, spec: dict[str, Any]) -> None:
    plane.kubectl(
        "patch", "rlooprun", RUN, "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": spec}),
    )  # fmt: skip


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def child_exists(plane: ControlPlane, namespace: str, name: str) -> bool:
    out = plane.kubectl("get", "pytorchjobs,jobs", "-n", namespace, "-o", "json").stdout
    return any(
        item["metadata"]["name"] == name and not item["metadata"].get("deletionTimestamp")
        for item in json.loads(out)["items"]
    )


def events(plane: ControlPlane, namespace: str, reason: str) -> list[dict[str, Any]]:
    out = plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return [e for e in json.loads(out)["items"] if e["reason"] == reason]


def test_an_unusable_edit_holds_the_run_its_child_runs_on_and_fixing_it_goes_on(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=8)) as workload:
        control_plane.kubectl(
            "apply", "-n", namespace, "-f", "-", stdin=example_without_validation()
        )
        eventually(
            lambda: run_status(control_plane, namespace, RUN).get("activeChild"), 60, "a child"
        )
        patch(control_plane, namespace, {"dapo": {"engine": "vllm"}})  # gpusPerNode is 0
        status = eventually(
            lambda: (s := run_status(control_plane, namespace, RUN)).get("reason")
            == "InvalidSpec" and s,
            30,
            "the run to hold on the unusable spec",
        )  # fmt: skip
        blocked = condition(status, "Blocked")
        assert blocked is not None and blocked["status"] == "True"
        assert "spec.dapo.engine: vllm needs GPUs" in blocked["message"]
        assert "PyTorchJob tiny-i00-rl keeps running" in blocked["message"]
        assert status["phase"] == "Running"
        assert child_exists(control_plane, namespace, "tiny-i00-rl"), "the child runs on"
        eventually(lambda: workload.history, 30, "the child to finish")
        status = wait_for_phase(control_plane, namespace, RUN, "Pending", 30)
        assert child_names(control_plane, namespace) == ["tiny-i00-rl"], "no new child"
        patch(control_plane, namespace, {"dapo": {"engine": "hf"}})
        wait_for_phase(control_plane, namespace, RUN, "Succeeded", 240)
    held = [e["message"] for e in events(control_plane, namespace, "InvalidSpec")]
    assert all("spec.dapo.engine: vllm needs GPUs" in message for message in held)
    endings = sorted(message.rsplit("; ", 2)[-1] for message in held)
    assert endings == [
        "no child starts until the spec is fixed",
        "no new child starts until the spec is fixed",
    ], "one event while the child ran, one once it had finished"


def test_growing_iterations_after_success_continues_from_the_last_policy(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=example(iterations=1))
        first = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
        patch(control_plane, namespace, {"iterations": 2})
        status = eventually(
            lambda: (s := run_status(control_plane, namespace, RUN)).get("phase") == "Succeeded"
            and s.get("progress") == "2/2" and s,
            180,
            "the second iteration to succeed",
        )  # fmt: skip
    assert status["iterations"][1]["rlJob"] == "tiny-i01-rl"
    assert status["policy"] != first["policy"]
    [reopened] = events(control_plane, namespace, "Reopened")
    assert f"iteration 2 starts from {first['policy']}" in reopened["message"]


def test_raising_max_retries_after_the_run_failed_retries_the_stage(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    # The example allows one retry; the filter fails twice, then succeeds.
    policy = WorkloadPolicy(failures={f"{RUN}-i00-filter": 2}, running_s=0.3)
    with running_workload(control_plane, namespace, policy):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        failed = wait_for_phase(control_plane, namespace, RUN, "Failed")
        assert failed["reason"] == "StageFailed"
        patch(control_plane, namespace, {"maxRetries": 2})
        status = wait_for_phase(control_plane, namespace, RUN, "Succeeded", 240)
    assert status["iterations"][0]["filterJob"] == f"{RUN}-i00-filter-r2"
    assert condition(status, "Failed") is None


NEWER_FIELD = {
    "type": "number",
    "default": 0.0,
    "description": "A field of a newer operator version: the KL penalty coefficient.",
}


@pytest.fixture()
def newer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The RLoopRun CRD of a newer operator, with a defaulted spec.dapo.klCoef."""
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["dapo"]["properties"]["klCoef"] = NEWER_FIELD
    control_plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(crd)
    )
    try:
        yield
    finally:
        control_plane.install_crds([CRD])


def test_fields_of_a_newer_crd_are_ignored_with_one_event(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, newer_crd: None
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
    assert status["ignoredFields"] == ["spec.dapo.klCoef"]
    [event] = events(control_plane, namespace, "UnknownFieldsIgnored")
    assert event["type"] == "Warning" and "spec.dapo.klCoef" in event["message"]

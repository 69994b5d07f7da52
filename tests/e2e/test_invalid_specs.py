"""Every row of docs/invalid-specs.md sent to a real API server with the CRD installed."""

from __future__ import annotations

import json

import pytest

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.e2e.helpers import eventually, run_status
from tests.e2e.operator_process import OperatorProcess
from tests.unit.operator.invalid_specs import InvalidSpec, invalid_specs, merge_patch
from tests.unit.operator.world import spec_dict

pytestmark = pytest.mark.cluster
ROWS = invalid_specs()


def manifest(name: str, spec: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": "rloop.io/v1alpha1",
            "kind": "RLoopRun",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def apply(plane: ControlPlane, namespace: str, name: str, spec: dict[str, object]) -> str:
    """kubectl apply (strict field validation, as kubectl does by default); stderr on refusal."""
    try:
        plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest(name, spec))
    except KubectlError as refused:
        return str(refused)
    return ""


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"row{r.number}")
def test_the_api_server_or_the_operator_answers_as_documented(
    row: InvalidSpec, control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    name = row.run_name or f"invalid-{row.number}"
    valid = spec_dict()
    if row.on_update:
        valid["iterations"] = 2
        assert apply(control_plane, namespace, name, valid) == ""
        refusal = apply(control_plane, namespace, name, merge_patch(valid, row.spec_patch))
        assert row.server_says in refusal, refusal
        return
    if row.caught_by in ("schema", "CEL"):
        refusal = apply(control_plane, namespace, name, merge_patch(valid, row.spec_patch))
        assert row.server_says in refusal, refusal
        return
    assert apply(control_plane, namespace, name, merge_patch(valid, row.spec_patch)) == ""
    if row.caught_by == "pod":  # the operator reads no Secrets: the run starts
        eventually(
            lambda: run_status(control_plane, namespace, name).get("activeChild"),
            30,
            "the run's first child",
        )
        return
    status = eventually(
        lambda: (s := run_status(control_plane, namespace, name)).get("message") and s,
        30,
        "the operator's condition",
    )
    assert row.local_says in status["message"]
    assert status["phase"] in ("Failed", "Pending")

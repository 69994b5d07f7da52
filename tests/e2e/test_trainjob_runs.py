"""Runs whose DAPO and RFT phases are Kubeflow Trainer v2 TrainJobs, on a real API server
that validates every TrainJob against the pinned Trainer's CRD (the oldest supported
Trainer's: tests/integration/test_trainjob_crds.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import children_by_kind, eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import EXAMPLE, RUN, STORE

pytestmark = pytest.mark.cluster
TRAINJOBS = "trainjobs.trainer.kubeflow.org"


def trainjob_run(**resources: Any) -> str:
    """The local example as a TrainJob run, as JSON for `kubectl apply -f -`."""
    run = yaml.safe_load(EXAMPLE.read_text())
    run["spec"]["resources"] |= {"launcher": "trainjob", **resources}
    return json.dumps(run)


def expected_children(iterations: int) -> dict[str, list[str]]:
    def named(*slugs: str) -> list[str]:
        return sorted(f"{RUN}-i{i:02d}-{slug}" for i in range(iterations) for slug in slugs)

    # The example has a validation set: the base policy's evaluation Job comes first.
    jobs = sorted([f"{RUN}-i00-base", *named("filter", "eval")])
    return {TRAINJOBS: named("rl", "rft"), "jobs.batch": jobs}


@pytest.fixture()
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


def test_a_trainjob_run_goes_through_two_iterations_to_succeeded(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.5)) as workload:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=trainjob_run())
        status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
    assert status["progress"] == "2/2"
    resources = (TRAINJOBS, "jobs.batch")
    assert children_by_kind(control_plane, namespace, resources) == expected_children(2)
    assert [c.kind for c in workload.history] == [
        "Job",
        *["TrainJob", "Job", "TrainJob", "Job"] * 2,
    ]
    trainjob = json.loads(
        control_plane.kubectl(
            "get", TRAINJOBS, f"{RUN}-i01-rft", "-n", namespace, "-o", "json"
        ).stdout
    )
    assert trainjob["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert "suspend" not in trainjob["spec"] or trainjob["spec"]["suspend"] is False


def _runtime_named(plane: ControlPlane, name: str) -> str:
    """Kubeflow's torch runtime under another name."""
    runtime = yaml.safe_load(Path(plane.layout.torch_runtime).read_text())
    runtime["metadata"]["name"] = name
    return json.dumps(runtime)


def test_a_run_naming_a_missing_runtime_is_blocked_until_it_is_created(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    runtime = f"rloop-torch-{namespace}"
    try:
        with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
            control_plane.kubectl(
                "apply", "-n", namespace, "-f", "-",
                stdin=trainjob_run(runtimeRef={"name": runtime}),
            )  # fmt: skip
            status = eventually(
                lambda: (
                    (s := run_status(control_plane, namespace, RUN)).get("reason")
                    == "ClusterTrainingRuntimeNotFound"
                    and s
                ),
                30,
                "the run to be Blocked",
            )
            assert f"ClusterTrainingRuntime {runtime!r}" in status["message"]
            blocked = next(c for c in status["conditions"] if c["type"] == "Blocked")
            assert blocked["status"] == "True" and runtime in blocked["message"]
            assert blocked["reason"] == "ClusterTrainingRuntimeNotFound"
            assert children_by_kind(control_plane, namespace)[TRAINJOBS] == []
            control_plane.kubectl("apply", "-f", "-", stdin=_runtime_named(control_plane, runtime))
            # The operator looks again every 30 s while a run is blocked.
            status = wait_for_phase(control_plane, namespace, RUN, "Succeeded", 180)
    finally:
        control_plane.kubectl("delete", "clustertrainingruntime", runtime, "--ignore-not-found")
    blocked = next(c for c in status["conditions"] if c["type"] == "Blocked")
    assert blocked["status"] == "False"
    assert children_by_kind(control_plane, namespace)[TRAINJOBS] == expected_children(2)[TRAINJOBS]

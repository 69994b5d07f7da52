"""A run applied with kubectl goes through its iterations on a real API server."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import (
    child_names,
    eventually,
    printed_columns,
    run_status,
    wait_for_phase,
)
from tests.e2e.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "local-run.yaml"
RUN = "tiny"  # metadata.name in the example
STORE = Path("/tmp/rloop-demo/store")  # spec.storage.uri of the example
# The example has a validation set, so the base policy is evaluated first.
EXPECTED_CHILDREN = sorted(
    [f"{RUN}-i00-base"]
    + [f"{RUN}-i{i:02d}-{stage}" for i in range(2) for stage in ("rl", "filter", "rft", "eval")]
)


def example_without_validation() -> str:
    """The example as JSON without its validation set: DAPO's child comes first, with no
    base-policy evaluation before it."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["spec"]["data"].pop("validation", None)
    return json.dumps(document)


@pytest.fixture()
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


def filter_messages(expert: list[int]) -> dict[str, str]:
    """What each iteration's filter pod leaves in its termination message (the workload
    layer runs no pods; the operator reads reports nowhere else)."""
    return {
        f"-i{index:02d}-filter": json.dumps(
            {"rollouts": 64, "hard_prompts": 3, "kept_samples": kept}
        )
        for index, kept in enumerate(expert)
    }


def test_kubectl_apply_runs_two_iterations_to_succeeded(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    seen: list[str] = []
    done = threading.Event()

    def watch_columns() -> None:
        while not done.wait(0.2):
            row = printed_columns(control_plane, namespace).get(RUN)
            # Until the operator's first status write the columns are blank.
            if not row or not row["ITERATION"].strip():
                continue
            if not seen or seen[-1] != f"{row['ITERATION']} {row['STAGE']}":
                seen.append(f"{row['ITERATION']} {row['STAGE']}")

    policy = WorkloadPolicy(running_s=1.5, messages=filter_messages(expert=[7, 5]))
    with running_workload(control_plane, namespace, policy):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        watcher = threading.Thread(target=watch_columns)
        watcher.start()
        try:
            status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
        finally:
            done.set()
            watcher.join()
    assert status["iteration"] == 2 and status["progress"] == "2/2"
    assert [r["expertSamples"] for r in status["iterations"]] == [7, 5]
    assert child_names(control_plane, namespace) == EXPECTED_CHILDREN
    for expected in ("0/2 Exploring", "0/2 Filtering", "0/2 Consolidating", "1/2 Exploring"):
        assert expected in seen, seen
    counters = [int(entry.split("/")[0]) for entry in seen]
    assert counters == sorted(counters), f"the counter went back: {seen}"
    assert status["expertSamples"] == 5
    table = control_plane.kubectl("get", "rloopruns", "-n", namespace).stdout
    assert printed_columns(control_plane, namespace)[RUN]["EXPERT"] == "5", table


def test_reports_reach_the_status_from_the_pods_termination_messages(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    # Nothing in the store: what the status shows came from the filter and eval pods.
    filtered = {"rollouts": 64, "hard_prompts": 3, "kept_samples": 4}
    evaluated = {"sets": {"heldout": {"avg@n": 0.25, "pass@k": {"4": 0.5}, "samples": 8}}}
    messages = {"-filter": json.dumps(filtered), "-eval": json.dumps(evaluated)}
    with running_workload(
        control_plane, namespace, WorkloadPolicy(running_s=0.3, messages=messages)
    ):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
    for record in status["iterations"]:
        counts = {key: record[key] for key in ("trajectories", "hardPrompts", "expertSamples")}
        assert counts == {"trajectories": 64, "hardPrompts": 3, "expertSamples": 4}
        assert record["metrics"] == {"heldout/avg@8": 0.25, "heldout/pass@4": 0.5}


def test_a_failed_phase_is_retried_under_a_new_name(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    policy = WorkloadPolicy(failures={f"{RUN}-i00-rl": 1}, running_s=0.3)
    with running_workload(control_plane, namespace, policy):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
    assert status["iterations"][0]["failedJobs"] == [f"{RUN}-i00-rl"]
    assert status["iterations"][0]["rlJob"] == f"{RUN}-i00-rl-r1"
    assert f"{RUN}-i00-rl-r1" in child_names(control_plane, namespace)


def test_a_phase_that_keeps_failing_fails_the_run_naming_child_and_cause(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    # The example allows one retry (maxRetries: 1).
    policy = WorkloadPolicy(failures={f"{RUN}-i00-filter": 5}, running_s=0.3)
    with running_workload(control_plane, namespace, policy):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        status = wait_for_phase(control_plane, namespace, RUN, "Failed")
    assert status["reason"] == "StageFailed"
    assert f"Job {RUN}-i00-filter-r1 failed" in status["message"]
    assert "kubectl logs" in status["message"]
    assert status["stage"] == "Filtering" and status["iteration"] == 0
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True"


def test_suspend_and_resume_mid_iteration(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=4)) as workload:
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        eventually(
            lambda: run_status(control_plane, namespace, RUN).get("stage") == "Filtering",
            60,
            "the Filtering stage",
        )
        control_plane.kubectl(
            "patch", "rlooprun", RUN, "-n", namespace, "--type=merge",
            "-p", '{"spec": {"suspend": true}}',
        )  # fmt: skip
        status = wait_for_phase(control_plane, namespace, RUN, "Suspended", 30)
        assert status["stage"] == "Filtering"
        eventually(
            lambda: f"{RUN}-i00-filter" not in child_names(control_plane, namespace),
            30,
            "the running filter Job to be deleted",
        )
        assert not [c for c in workload.history if c.name == f"{RUN}-i00-filter"]
        control_plane.kubectl(
            "patch", "rlooprun", RUN, "-n", namespace, "--type=merge",
            "-p", '{"spec": {"suspend": false}}',
        )  # fmt: skip
        eventually(
            lambda: f"{RUN}-i00-filter" in child_names(control_plane, namespace),
            30,
            "the filter Job to be created again",
        )
        wait_for_phase(control_plane, namespace, RUN, "Succeeded", 180)


def test_deleting_a_run_garbage_collects_its_children(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        eventually(lambda: len(child_names(control_plane, namespace)) >= 3, 60, "three children")
        control_plane.kubectl("delete", "rlooprun", RUN, "-n", namespace, "--wait=true")
    eventually(
        lambda: child_names(control_plane, namespace) == [],
        60,
        "kube-controller-manager to garbage-collect the children",
    )

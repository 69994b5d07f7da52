"""Killing the operator (SIGKILL) in every stage changes nothing: state lives in the
run's status and its children, never only in the operator's memory."""

from __future__ import annotations

import shutil

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import child_names, eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import EXAMPLE, EXPECTED_CHILDREN, RUN, STORE

pytestmark = pytest.mark.cluster
STAGES = ("Exploring", "Filtering", "Consolidating", "Evaluating")


def test_sigkill_in_every_stage_then_restart_completes_without_duplicates(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    counters: list[int] = []
    try:
        with running_workload(control_plane, namespace, WorkloadPolicy(running_s=2)) as workload:
            control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
            for iteration in range(2):
                for stage in STAGES:
                    status = eventually(
                        lambda i=iteration, s=stage: (
                            (st := run_status(control_plane, namespace, RUN)).get("stage") == s
                            and st.get("iteration") == i
                            and st
                        ),
                        60,
                        f"iteration {iteration} {stage}",
                    )
                    counters.append(status["iteration"])
                    workload.pause()
                    operator.kill()
                    finished_before = len(workload.history)
                    workload.resume()  # the stage's child finishes while no operator runs
                    eventually(
                        lambda before=finished_before: len(workload.history) > before,
                        30,
                        f"the {stage} child to finish while the operator is down",
                    )
                    operator.start()
            status = wait_for_phase(control_plane, namespace, RUN, "Succeeded")
    finally:
        shutil.rmtree(STORE / namespace, ignore_errors=True)
    counters.append(status["iteration"])
    assert counters == sorted(counters), f"the iteration counter went back: {counters}"
    assert child_names(control_plane, namespace) == EXPECTED_CHILDREN
    assert operator.starts >= 9

"""A cluster with only Kubeflow Trainer v2 (no PyTorchJob CRD): the operator starts, runs
TrainJob runs, and blocks a PyTorchJob run with a condition instead of failing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane, KubectlError, running_control_plane
from tests.cluster.devcluster import install_project_objects, project_crds
from tests.cluster.layout import ensure_binaries
from tests.cluster.workload import running_workload
from tests.e2e.helpers import create_namespace, eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess, install_chart, running_operator
from tests.e2e.test_run_lifecycle import EXAMPLE, RUN, STORE
from tests.e2e.test_trainjob_runs import trainjob_run

pytestmark = pytest.mark.cluster
NAMESPACE = "trainer-only"


@pytest.fixture(scope="module")
def trainer_only_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    work_dir = tmp_path_factory.mktemp("trainer-only-plane")
    crds = project_crds(pytorchjob=False)
    with running_control_plane(ensure_binaries(), work_dir, crds) as plane:
        install_project_objects(plane)
        with pytest.raises(KubectlError, match="NotFound"):
            plane.kubectl("get", "crd", "pytorchjobs.kubeflow.org")
        yield plane


@pytest.fixture(scope="module")
def trainer_only_operator(
    trainer_only_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    work_dir = tmp_path_factory.mktemp("trainer-only-operator")
    kubeconfig = install_chart(trainer_only_plane, work_dir)
    with running_operator(kubeconfig, work_dir) as process:
        yield process


def test_without_the_pytorchjob_crd_trainjob_runs_succeed_and_pytorchjob_runs_wait(
    trainer_only_plane: ControlPlane, trainer_only_operator: OperatorProcess
) -> None:
    plane = trainer_only_plane
    create_namespace(plane, NAMESPACE)
    legacy = yaml.safe_load(EXAMPLE.read_text())
    legacy["metadata"]["name"] = "legacy"
    try:
        with running_workload(plane, NAMESPACE):
            plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=trainjob_run())
            plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(legacy))
            wait_for_phase(plane, NAMESPACE, RUN, "Succeeded")
            status = eventually(
                lambda: (
                    (s := run_status(plane, NAMESPACE, "legacy")).get("reason")
                    == "LauncherNotInstalled"
                    and s
                ),
                30,
                "the PyTorchJob run to be Blocked",
            )
    finally:
        shutil.rmtree(STORE / NAMESPACE, ignore_errors=True)
    assert status["phase"] == "Pending"
    blocked = next(c for c in status["conditions"] if c["type"] == "Blocked")
    assert (blocked["status"], blocked["reason"]) == ("True", "LauncherNotInstalled")
    assert "does not serve PyTorchJob (kubeflow.org/v1)" in status["message"]
    assert "spec.resources.launcher: trainjob" in status["message"]
    assert trainer_only_operator.process is not None
    assert trainer_only_operator.process.poll() is None, trainer_only_operator.log_tail()

"""The operator installed with the chart into the test API server, running as a separate
process with the chart's ServiceAccount, and one namespace plus workload layer per test."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.e2e.helpers import create_namespace
from tests.e2e.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "rloop-operator"
RELEASE_NAMESPACE = "rloop-system"
_namespaces = itertools.count(1)


def helm_binary() -> str:
    return subprocess.run(
        [str(ROOT / "hack" / "helm.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def chart_service_account(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`helm install` the chart; a kubeconfig with its ServiceAccount's token."""
    installed = subprocess.run(
        [
            helm_binary(), "install", RELEASE, str(ROOT / "helm" / "rloop-operator"),
            "--namespace", RELEASE_NAMESPACE, "--create-namespace",
            "--kubeconfig", str(control_plane.kubeconfig),
        ],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert installed.returncode == 0, f"helm install failed: {installed.stderr}"
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return control_plane.service_account_kubeconfig(RELEASE_NAMESPACE, RELEASE, path)


@pytest.fixture(scope="session")
def operator(
    chart_service_account: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        chart_service_account, tmp_path_factory.mktemp("operator-log") / "operator.log"
    )
    process.start()
    yield process
    process.stop()
    # A permission the chart lacks shows up as Forbidden in the operator's log.
    log = process.log_tail(10**8)
    assert "Forbidden" not in log, f"the operator hit RBAC denials:\n{process.log_tail()}"


@pytest.fixture()
def namespace(control_plane: ControlPlane) -> str:
    name = f"e2e-{next(_namespaces)}"
    create_namespace(control_plane, name)
    return name

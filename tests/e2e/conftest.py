"""The operator installed with the chart into the test API server, running as a separate
process with the chart's ServiceAccount, and one namespace plus workload layer per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.e2e.helpers import create_namespace
from tests.e2e.operator_process import OperatorProcess, install_chart, running_operator

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def chart_service_account(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return install_chart(control_plane, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="session")
def operator(
    chart_service_account: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(
        chart_service_account, tmp_path_factory.mktemp("operator-log")
    ) as process:
        yield process


@pytest.fixture()
def namespace(control_plane: ControlPlane) -> str:
    name = f"e2e-{next(_namespaces)}"
    create_namespace(control_plane, name)
    return name

"""The operator on the full-mode cluster (real scheduler, kwok nodes, training operator,
Trainer, JobSet, Kueue): installed with the chart and run as its ServiceAccount, one
namespace per test. One full cluster and one operator serve the whole session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.cluster.fullcluster import FullCluster
from tests.e2e.operator_process import OperatorProcess, install_chart, running_operator

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def full_operator(
    full_cluster: FullCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    kubeconfig = install_chart(full_cluster.plane, tmp_path_factory.mktemp("full-operator"))
    with running_operator(kubeconfig, tmp_path_factory.mktemp("full-operator-log")) as process:
        yield process


@pytest.fixture()
def namespace(full_cluster: FullCluster) -> Iterator[str]:
    """A namespace whose kwok scripts and objects go at the end of the test."""
    name = f"scenario-{next(_namespaces)}"
    full_cluster.kubectl("create", "namespace", name)
    yield name
    full_cluster.forget_scripts(name)
    full_cluster.kubectl("delete", "namespace", name, "--wait=false")

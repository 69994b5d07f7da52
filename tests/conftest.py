"""Session fixtures for the real servers; nothing starts unless a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The harness is imported inside the fixtures so that `pytest tests/unit` imports none of it.
if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane
    from tests.cluster.fullcluster import FullCluster
    from tests.cluster.mlflow import MlflowServer
    from tests.cluster.s3 import S3Endpoint


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager with the PyTorchJob, TrainJob (and
    its runtimes: the CRDs and ClusterTrainingRuntime torch-distributed) and RLoop CRDs.

    Builds the pinned binaries first if they are missing (hack/cluster/build-bins.sh), with
    the build's timings shown even under output capture.
    """
    from tests.cluster.controlplane import running_control_plane
    from tests.cluster.devcluster import install_project_objects, project_crds
    from tests.cluster.layout import ensure_binaries

    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        layout = ensure_binaries()
    work_dir: Path = tmp_path_factory.mktemp("control-plane")
    with running_control_plane(layout, work_dir, project_crds()) as plane:
        install_project_objects(plane)
        yield plane


@pytest.fixture(scope="session")
def full_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FullCluster]:
    """The full mode: a control plane of its own with kube-scheduler, kwok's fake GPU nodes
    (4 x 8 GPUs), the training operator, Kubeflow Trainer, JobSet and Kueue.

    Separate from `control_plane`, whose simulated workload layer must not meet the real
    controllers. Builds what is missing first (hack/cluster/build-bins.sh --full).
    """
    from tests.cluster.devcluster import project_crds
    from tests.cluster.fullstart import running_full_cluster
    from tests.cluster.layout import ensure_full_binaries

    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        layout = ensure_full_binaries()
    work_dir: Path = tmp_path_factory.mktemp("full-cluster")
    with running_full_cluster(layout, work_dir, project_crds()) as cluster:
        with capture.global_and_fixture_disabled():
            print(f"\nfull cluster started in {cluster.started_in_s:.0f}s; logs in {work_dir}")
        yield cluster


# tryfirst: xdist's worker reads the marks in its own hook of this name, registered after
# this file, so it would run first and see none.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For pytest-xdist's --dist loadgroup (`make test` runs two workers): the tests on the
    full-mode cluster share one worker (one full cluster in the session), and every other
    file's tests stay together (its module fixtures are built once)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        group = "full-cluster" if "full_cluster" in fixtures else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the full cluster reports the tails of its processes' logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    cluster = getattr(item, "funcargs", {}).get("full_cluster")
    if report.failed and cluster is not None:
        report.sections.append(("full cluster logs", cluster.log_tails()))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """SeaweedFS serving one bucket over S3 with credentials like production's."""
    from tests.cluster.s3 import running_s3

    with running_s3(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def mlflow_server(
    s3_server: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """A real MLflow tracking server: runs in sqlite, artifacts in the test S3 bucket."""
    from tests.cluster.mlflow import running_mlflow

    with running_mlflow(tmp_path_factory.mktemp("mlflow"), s3_server) as server:
        yield server

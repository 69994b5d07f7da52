"""Session fixtures for the real servers; nothing starts unless a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The harness is imported inside the fixtures so that `pytest tests/unit` imports none of it.
if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane
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
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """SeaweedFS serving one bucket over S3 with credentials like production's."""
    from tests.cluster.s3 import running_s3

    with running_s3(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint

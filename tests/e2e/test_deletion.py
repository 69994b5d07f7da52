"""A run being deleted never gets a new child, on a real API server with foreground
deletion: the run stays (with a deletionTimestamp) until the garbage collector has
deleted its children, and their deletion must not make the operator create them again.
A finalizer of another controller (here the test's) keeps the run a while longer."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import child_names, eventually, get_run, run_status
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import RUN, STORE, example_without_validation

pytestmark = pytest.mark.cluster


class PyTorchJobUids:
    """Every PyTorchJob object that ever exists in the namespace, by uid."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(plane, namespace), daemon=True)

    def _watch(self, plane: ControlPlane, namespace: str) -> None:
        custom = client.CustomObjectsApi(plane.api_client())
        while not self._stop.is_set():
            # Each watch starts with the objects that exist, so a gap misses nothing that
            # lives longer than it.
            with contextlib.suppress(ApiException):
                for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    custom.list_namespaced_custom_object, "kubeflow.org", "v1", namespace,
                    "pytorchjobs", timeout_seconds=2,
                ):  # fmt: skip
                    metadata = event["object"]["metadata"]
                    self.seen.setdefault(metadata["uid"], metadata["name"])

    def __enter__(self) -> PyTorchJobUids:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run_exists(plane: ControlPlane, namespace: str) -> bool:
    try:
        plane.kubectl("get", "rlooprun", RUN, "-n", namespace)
    except KubectlError:
        return False
    return True


@pytest.fixture()
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


HOLD = "e2e.rloop.io/hold"


def test_foreground_deletion_of_a_run_creates_no_new_child(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, store_cleanup: None
) -> None:
    # DAPO's PyTorchJob is the first child.
    document = json.loads(example_without_validation())
    document["metadata"]["finalizers"] = [HOLD]
    with (
        PyTorchJobUids(control_plane, namespace) as children,
        running_workload(control_plane, namespace, WorkloadPolicy(running_s=60)),
    ):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))
        eventually(
            lambda: run_status(control_plane, namespace, RUN).get("phase") == "Running",
            60,
            "the first child",
        )
        control_plane.kubectl(
            "delete", "rlooprun", RUN, "-n", namespace, "--cascade=foreground", "--wait=false"
        )
        eventually(
            lambda: not child_names(control_plane, namespace), 60, "the GC to delete the child"
        )
        time.sleep(5)  # the run, still there, is reconciled on its child's deletion
        assert child_names(control_plane, namespace) == []
        run = get_run(control_plane, namespace, RUN)
        assert run["metadata"].get("deletionTimestamp")
        finalizers = [f for f in run["metadata"]["finalizers"] if f != HOLD]
        control_plane.kubectl(
            "patch", "rlooprun", RUN, "-n", namespace, "--type=merge",
            "-p", json.dumps({"metadata": {"finalizers": finalizers or None}}),
        )  # fmt: skip
        eventually(lambda: not run_exists(control_plane, namespace), 60, "the run to be gone")
    assert list(children.seen.values()) == [f"{RUN}-i00-rl"], json.dumps(children.seen)

"""The test control plane behaves like a real cluster where a fake client would not."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.devcluster import project_crds
from tests.cluster.workload import RUN_LABEL, WorkloadPolicy, running_workload

pytestmark = pytest.mark.cluster

WAIT_S = 60.0

PROBE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "probes.test.rloop.io"},
    "spec": {
        "group": "test.rloop.io",
        "names": {"kind": "Probe", "plural": "probes", "singular": "probe"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def eventually(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s")
        time.sleep(0.25)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    return json.loads(plane.kubectl(*args, "-o", "json").stdout)


def test_pytorchjob_and_rlooprun_crds_are_established(control_plane: ControlPlane) -> None:
    names = {yaml.safe_load(path.read_text())["metadata"]["name"] for path in project_crds()}
    assert {"pytorchjobs.kubeflow.org", "rloopruns.rloop.io"} <= names
    for name in names:
        crd = kubectl_json(control_plane, "get", "crd", name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True", name


def test_child_of_a_deleted_owner_is_garbage_collected(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "configmap", "owner", f"--namespace={namespace}")
    owner = kubectl_json(control_plane, "get", "configmap", "owner", f"--namespace={namespace}")
    control_plane.kubectl("delete", "configmap", "owner", f"--namespace={namespace}")
    owner_reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "child", "namespace": namespace, "ownerReferences": [owner_reference]},
    }
    control_plane.kubectl("create", "-f", "-", stdin=json.dumps(child))

    def child_gone() -> bool:
        listed = kubectl_json(control_plane, "get", "configmaps", f"--namespace={namespace}")
        return "child" not in {item["metadata"]["name"] for item in listed["items"]}

    eventually(child_gone, "garbage collection of the orphaned child")


def test_status_field_missing_from_the_schema_is_pruned(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    crd_file = tmp_path / "probe-crd.json"
    crd_file.write_text(json.dumps(PROBE_CRD))
    control_plane.install_crds([crd_file])
    probe = {"apiVersion": "test.rloop.io/v1", "kind": "Probe", "metadata": {"name": "p"}}
    control_plane.kubectl("create", f"--namespace={namespace}", "-f", "-", stdin=json.dumps(probe))

    control_plane.kubectl(
        "patch", "probe", "p", f"--namespace={namespace}", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"phase": "Running", "undeclared": "x"}}),
    )  # fmt: skip

    stored = kubectl_json(control_plane, "get", "probe", "p", f"--namespace={namespace}")
    assert stored["status"] == {"phase": "Running"}


def test_service_account_is_denied_a_verb_its_role_lacks(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    ns = f"--namespace={namespace}"
    control_plane.kubectl("create", "serviceaccount", "reader", ns)
    control_plane.kubectl(
        "create", "role", "configmap-reader", "--verb=get,list", "--resource=configmaps", ns
    )
    control_plane.kubectl(
        "create", "rolebinding", "reader", "--role=configmap-reader",
        f"--serviceaccount={namespace}:reader", ns,
    )  # fmt: skip
    kubeconfig = control_plane.service_account_kubeconfig(
        namespace, "reader", tmp_path / "reader.kubeconfig"
    )
    core = kubernetes.client.CoreV1Api(control_plane.api_client(kubeconfig))

    assert core.list_namespaced_config_map(namespace).items is not None
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="written-by-reader")
    )
    with pytest.raises(kubernetes.client.ApiException) as denied:
        core.create_namespaced_config_map(namespace, body)
    assert denied.value.status == 403


def test_job_controller_creates_the_pods_of_a_job(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl(
        "create", "job", "sleeper", "--image=busybox", f"--namespace={namespace}",
        "--", "sleep", "1",
    )  # fmt: skip

    def pod_created() -> bool:
        pods = kubectl_json(
            control_plane, "get", "pods", f"--namespace={namespace}", "-l", "job-name=sleeper"
        )
        return len(pods["items"]) == 1

    eventually(pod_created, "a Pod created by the Job controller")


def labelled_job(name: str) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": ["true"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {RUN_LABEL: "probe-run"}},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def labelled_pytorchjob(name: str) -> dict[str, Any]:
    container = {"name": "pytorch", "image": "trainer", "command": ["true"]}
    master = {
        "replicas": 1,
        "restartPolicy": "Never",
        "template": {"spec": {"containers": [container]}},
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": {RUN_LABEL: "probe-run"}},
        "spec": {"pytorchReplicaSpecs": {"Master": master}},
    }


def conditions_of(plane: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any]:
    obj = kubectl_json(plane, "get", kind, name, f"--namespace={namespace}")
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_workload_layer_completes_a_job_and_the_job_controller_keeps_it(
    control_plane: ControlPlane, namespace: str
) -> None:
    ns = f"--namespace={namespace}"
    with running_workload(control_plane, namespace):
        control_plane.kubectl("create", ns, "-f", "-", stdin=json.dumps(labelled_job("filter")))
        eventually(
            lambda: "Complete" in conditions_of(control_plane, "job", "filter", namespace),
            "Job completion",
        )
    # Give the Job controller time to resync the finished Job before looking again.
    time.sleep(3)

    job = kubectl_json(control_plane, "get", "job", "filter", ns)
    conditions = {c["type"]: c["status"] for c in job["status"]["conditions"]}
    assert conditions == {"SuccessCriteriaMet": "True", "Complete": "True"}
    assert job["status"]["succeeded"] == 1
    assert job["status"]["completionTime"] >= job["status"]["startTime"]


def test_workload_layer_fails_a_pytorchjob_once_as_its_policy_says(
    control_plane: ControlPlane, namespace: str
) -> None:
    policy = WorkloadPolicy(failures={"explore": 1})
    ns = f"--namespace={namespace}"
    with running_workload(control_plane, namespace, policy) as workload:
        for finished_before, name in enumerate(["explore-1", "explore-2"]):
            manifest = json.dumps(labelled_pytorchjob(name))
            control_plane.kubectl("create", ns, "-f", "-", stdin=manifest)

            def finished(expected: int = finished_before + 1) -> bool:
                return len(workload.finished("PyTorchJob")) == expected

            eventually(finished, f"PyTorchJob {name} finishing")

    first = conditions_of(control_plane, "pytorchjob", "explore-1", namespace)
    second = conditions_of(control_plane, "pytorchjob", "explore-2", namespace)
    assert first["Failed"]["status"] == "True"
    assert first["Failed"]["reason"] == "PyTorchJobFailed"
    assert first["Running"]["status"] == "False"
    assert second["Succeeded"]["status"] == "True"
    assert second["Succeeded"]["reason"] == "PyTorchJobSucceeded"
    assert "Failed" not in second

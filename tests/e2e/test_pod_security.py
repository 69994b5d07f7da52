"""Phase pods through the real API server's admission in namespaces that enforce the Pod
Security "restricted" profile (every e2e namespace does: helpers.create_namespace)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import eventually, run_status, wait_for_phase
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_run_lifecycle import EXAMPLE, RUN, STORE

pytestmark = pytest.mark.cluster
POD_TEMPLATE = {
    "labels": {"team": "reasoning"},
    "annotations": {"k8s.v1.cni.cncf.io/networks": "rdma-net"},
    "env": [{"name": "NCCL_DEBUG", "value": "INFO"}],
    "volumes": [{"name": "nccl-topology", "emptyDir": {}}],
    "volumeMounts": [{"name": "nccl-topology", "mountPath": "/etc/nccl"}],
    "limits": {"rdma/hca": 1},
}


@pytest.fixture()
def store_cleanup(namespace: str) -> Iterator[None]:
    yield
    shutil.rmtree(STORE / namespace, ignore_errors=True)


def run_with(launcher: str) -> str:
    run = yaml.safe_load(EXAMPLE.read_text())
    run["spec"]["iterations"] = 1
    run["spec"]["resources"] |= {"launcher": launcher, "podTemplate": POD_TEMPLATE}
    return json.dumps(run)


def pod(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout
    )
    return found


def test_the_namespace_refuses_a_pod_that_is_not_restricted(
    control_plane: ControlPlane, namespace: str
) -> None:
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(KubectlError, match='violates PodSecurity "restricted:latest"'):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bare))


@pytest.mark.parametrize(
    ("launcher", "rl_pod"), [("pytorchjob", "-master-0"), ("trainjob", "-node-0-0")]
)
def test_a_run_with_a_pod_template_runs_its_pods_in_a_restricted_namespace(
    launcher: str,
    rl_pod: str,
    control_plane: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    store_cleanup: None,
) -> None:
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.3)) as workload:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=run_with(launcher))
        try:
            wait_for_phase(control_plane, namespace, RUN, "Succeeded")
        except AssertionError as timeout:
            message = run_status(control_plane, namespace, RUN).get("message")
            layer = f"refused: {workload.refusals}, error: {workload.error!r}"
            raise AssertionError(f"run message: {message}; {layer}") from timeout
    assert workload.refusals == {}
    created = pod(control_plane, namespace, f"{RUN}-i00-rl{rl_pod}")
    assert created["metadata"]["labels"]["team"] == "reasoning"
    assert created["metadata"]["annotations"] == POD_TEMPLATE["annotations"]
    spec = created["spec"]
    assert spec["securityContext"]["runAsUser"] == 65532
    [container] = spec["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "NCCL_DEBUG", "value": "INFO"} in container["env"]
    assert {"name": "nccl-topology", "mountPath": "/etc/nccl"} in [
        {"name": m["name"], "mountPath": m["mountPath"]} for m in container["volumeMounts"]
    ]
    assert container["resources"]["limits"]["rdma/hca"] == "1"
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]
    assert spec.get("automountServiceAccountToken") is (None if launcher == "trainjob" else False)


def test_a_job_whose_pod_admission_refuses_is_never_finished_by_the_workload_layer(
    control_plane: ControlPlane, namespace: str
) -> None:
    # The Job controller sets startTime even when its pod is refused; finishing such a Job
    # would hide a phase pod that a hardened cluster refuses.
    container = {"name": "filter", "image": "trainer", "command": ["rloop-trainer", "filter"]}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "tiny-i00-filter", "labels": {"rloop.io/run": RUN}},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }
    with running_workload(control_plane, namespace, WorkloadPolicy(running_s=0.1)) as workload:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))

        def refused() -> str:
            return control_plane.kubectl(
                "get", "events", "-n", namespace, "--field-selector=reason=FailedCreate",
                "-o", "jsonpath={.items[*].message}",
            ).stdout  # fmt: skip

        assert "violates PodSecurity" in eventually(refused, 60, "the Job controller's refusal")
        started = json.loads(
            control_plane.kubectl(
                "get", "job", "tiny-i00-filter", "-n", namespace, "-o", "json"
            ).stdout
        )["status"]
        assert "startTime" in started
        after = workload.polls + 3  # passes that each see the Job started, past running_s
        eventually(lambda: workload.polls >= after, 60, "three passes of the workload layer")
    assert workload.history == []

"""The full mode's building blocks, each with hand-written children (not the operator):
real controllers turn them into pods that kube-scheduler binds to kwok's fake GPU nodes."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.controlplane import KubectlError
from tests.cluster.fullcluster import FullCluster
from tests.cluster.kueue import QUEUE_LABEL
from tests.cluster.kwok import Fail, KeepRunning, Waiting
from tests.e2e.helpers import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.full]

WAIT_S = 120.0
GPU_POD_RESOURCES = {
    "requests": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "8"},
    "limits": {"nvidia.com/gpu": "8"},
}
MASTER_OF = "training.kubeflow.org/job-name={},training.kubeflow.org/replica-type=master"
_namespaces = itertools.count(1)


@pytest.fixture
def namespace(full_cluster: FullCluster) -> Iterator[str]:
    name = f"full-{next(_namespaces)}"
    full_cluster.kubectl("create", "namespace", name)
    yield name
    full_cluster.forget_scripts(name)
    full_cluster.kubectl("delete", "namespace", name, "--wait=false")


def create(cluster: FullCluster, namespace: str, manifest: dict[str, Any]) -> None:
    cluster.kubectl("create", f"--namespace={namespace}", "-f", "-", stdin=json.dumps(manifest))


def get(cluster: FullCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        cluster.kubectl("get", kind, name, f"--namespace={namespace}", "-o", "json")
    )
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def wait_for_condition(
    cluster: FullCluster, namespace: str, kind: str, name: str, cond: str
) -> None:
    def true() -> bool:
        found = condition(get(cluster, namespace, kind, name), cond)
        return found is not None and found["status"] == "True"

    eventually(true, WAIT_S, f"{kind} {name} condition {cond}")


def pytorchjob(name: str, workers: int) -> dict[str, Any]:
    container = {"name": "pytorch", "image": "trainer", "command": ["torchrun", "train.py"],
                 "resources": GPU_POD_RESOURCES}  # fmt: skip
    template = {"spec": {"containers": [container]}}
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if workers:
        replicas["Worker"] = {"replicas": workers, "restartPolicy": "Never", "template": template}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "nprocPerNode": "8",
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
        },
    }


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    return state.get("terminated") or {}


def test_pytorchjob_pods_run_on_two_gpu_nodes_and_the_job_succeeds(
    full_cluster: FullCluster, namespace: str
) -> None:
    create(full_cluster, namespace, pytorchjob("tiny-i00-rl", workers=1))

    wait_for_condition(full_cluster, namespace, "pytorchjob", "tiny-i00-rl", "Succeeded")

    # The job succeeds with its master; the worker may finish a moment later.
    def both_finished() -> dict[str, dict[str, Any]]:
        pods = {p["metadata"]["name"]: p for p in full_cluster.pods(namespace)}
        finished = ("Succeeded", "Failed")
        done = len(pods) == 2 and all(p["status"]["phase"] in finished for p in pods.values())
        return pods if done else {}

    pods = eventually(both_finished, WAIT_S, "both pods of tiny-i00-rl to finish")
    assert sorted(pods) == ["tiny-i00-rl-master-0", "tiny-i00-rl-worker-0"]
    nodes = {pod["spec"]["nodeName"] for pod in pods.values()}
    assert len(nodes) == 2 and all(node.startswith("gpu-node-") for node in nodes)
    assert {pod["status"]["phase"] for pod in pods.values()} == {"Succeeded"}
    assert {terminated(pod)["exitCode"] for pod in pods.values()} == {0}
    master, worker = env_of(pods["tiny-i00-rl-master-0"]), env_of(pods["tiny-i00-rl-worker-0"])
    assert master["MASTER_ADDR"] == worker["MASTER_ADDR"] == "tiny-i00-rl-master-0"
    assert master["PET_NNODES"] == worker["PET_NNODES"] == "2"
    assert master["PET_NPROC_PER_NODE"] == worker["PET_NPROC_PER_NODE"] == "8"
    assert (master["PET_NODE_RANK"], worker["PET_NODE_RANK"]) == ("0", "1")
    services = json.loads(full_cluster.kubectl("get", "services", "-n", namespace, "-o", "json"))
    assert sorted(s["metadata"]["name"] for s in services["items"]) == sorted(pods)


def test_training_operator_webhook_refuses_a_name_that_is_not_a_dns_1035_label(
    full_cluster: FullCluster, namespace: str
) -> None:
    with pytest.raises(KubectlError, match="DNS-1035"):
        create(full_cluster, namespace, pytorchjob("qwen2.5-math-i00-rl", workers=0))


def test_a_failing_master_pod_fails_the_pytorchjob(
    full_cluster: FullCluster, namespace: str
) -> None:
    labels = dict(label.split("=") for label in MASTER_OF.format("tiny-i00-rl").split(","))
    full_cluster.script_pods(
        namespace, Fail(exit_code=3, message="CUDA error: out of memory"), labels
    )
    create(full_cluster, namespace, pytorchjob("tiny-i00-rl", workers=0))

    wait_for_condition(full_cluster, namespace, "pytorchjob", "tiny-i00-rl", "Failed")

    (master,) = full_cluster.pods(namespace, MASTER_OF.format("tiny-i00-rl"))
    assert master["status"]["phase"] == "Failed"
    assert terminated(master)["exitCode"] == 3
    assert terminated(master)["message"] == "CUDA error: out of memory"


def test_trainjob_on_the_torch_runtime_runs_as_a_jobset_on_two_gpu_nodes(
    full_cluster: FullCluster, namespace: str
) -> None:
    trainjob = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "tiny-i00-tj"},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {
                "numNodes": 2,
                "numProcPerNode": 8,
                "image": "trainer",
                "command": ["torchrun", "train.py"],
                "resourcesPerNode": GPU_POD_RESOURCES,
            },
        },
    }
    create(full_cluster, namespace, trainjob)

    wait_for_condition(full_cluster, namespace, "trainjob", "tiny-i00-tj", "Complete")

    jobset = get(full_cluster, namespace, "jobset", "tiny-i00-tj")
    assert [r["name"] for r in jobset["spec"]["replicatedJobs"]] == ["node"]
    pods = full_cluster.pods(namespace, "jobset.sigs.k8s.io/jobset-name=tiny-i00-tj")
    assert len(pods) == 2
    assert len({pod["spec"]["nodeName"] for pod in pods}) == 2
    assert {pod["status"]["phase"] for pod in pods} == {"Succeeded"}
    ranks = sorted(
        pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for pod in pods
    )
    assert ranks == ["0", "1"]
    env, other_env = (env_of(pod) for pod in pods)
    assert env == other_env  # PET_NODE_RANK comes from the completion index annotation
    assert env["PET_NNODES"] == "2"
    assert env["PET_NPROC_PER_NODE"] == "8"
    assert env["PET_MASTER_ADDR"] == "tiny-i00-tj-node-0-0.tiny-i00-tj"


def test_trainer_keeps_a_snapshot_of_the_runtime_that_the_trainjob_owns(
    full_cluster: FullCluster, namespace: str
) -> None:
    # Kubeflow Trainer v2.3 (pkg/runtime/core/snapshot.go): a TrainJob reads its runtime from
    # the copy taken at its first reconcile, so a runtime edited later changes only TrainJobs
    # created later; the operator leaves managedBy to its default, Trainer's own controller.
    trainer = {"numNodes": 1, "image": "trainer", "command": ["torchrun", "train.py"]}
    trainjob = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "tiny-i00-snap"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": trainer},
    }
    create(full_cluster, namespace, trainjob)

    def snapshot() -> dict[str, Any] | None:
        listed = full_cluster.kubectl("get", "configmaps", "-n", namespace, "-o", "json")
        named = "tiny-i00-snap-runtime-snapshot"
        items = json.loads(listed)["items"]
        return next((c for c in items if c["metadata"]["name"] == named), None)

    configmap = eventually(snapshot, 60, "the runtime snapshot ConfigMap")
    created = get(full_cluster, namespace, "trainjob", "tiny-i00-snap")
    assert created["spec"]["managedBy"] == "trainer.kubeflow.org/trainjob-controller"
    [owner] = configmap["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "TrainJob",
        created["metadata"]["uid"],
        True,
    )
    assert "name: torch-distributed" in configmap["data"]["runtime"]


def test_a_pod_no_node_matches_stays_pending_as_unschedulable(
    full_cluster: FullCluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-B200"},
            "containers": [{"name": "main", "image": "trainer"}],
        },
    }
    create(full_cluster, namespace, pod)

    def unschedulable() -> dict[str, Any]:
        scheduled = condition(get(full_cluster, namespace, "pod", "nowhere"), "PodScheduled")
        return scheduled if scheduled and scheduled["status"] == "False" else {}

    scheduled = eventually(unschedulable, WAIT_S, "the scheduler's verdict on pod nowhere")
    assert scheduled["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in scheduled["message"]
    assert get(full_cluster, namespace, "pod", "nowhere")["status"]["phase"] == "Pending"


def test_scripted_pods_wait_with_a_reason_or_keep_running_until_deleted(
    full_cluster: FullCluster, namespace: str
) -> None:
    full_cluster.script_pods(
        namespace, Waiting("ImagePullBackOff", "Back-off pulling image"), names=["stuck"]
    )
    full_cluster.script_pods(namespace, KeepRunning(), names=["server"])
    for name in ("stuck", "server"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [{"name": "main", "image": "trainer"}]}}  # fmt: skip
        create(full_cluster, namespace, pod)

    def waiting() -> dict[str, Any]:
        statuses = get(full_cluster, namespace, "pod", "stuck")["status"].get("containerStatuses")
        return dict(statuses[0]["state"].get("waiting") or {}) if statuses else {}

    assert eventually(waiting, WAIT_S, "pod stuck waiting") == {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image",
    }  # fmt: skip
    assert get(full_cluster, namespace, "pod", "stuck")["status"]["phase"] == "Pending"
    eventually(
        lambda: get(full_cluster, namespace, "pod", "server")["status"]["phase"] == "Running",
        WAIT_S, "pod server Running",
    )  # fmt: skip
    full_cluster.kubectl("delete", "pod", "server", f"--namespace={namespace}", "--wait=true")
    assert [p["metadata"]["name"] for p in full_cluster.pods(namespace)] == ["stuck"]


def test_kueue_admits_a_queued_job_only_once_its_queue_has_gpu_quota(
    full_cluster: FullCluster, namespace: str
) -> None:
    full_cluster.kueue_queue(namespace, "gpus", gpu_quota=0)
    container = {"name": "filter", "image": "trainer", "resources": GPU_POD_RESOURCES}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "tiny-i00-eval", "labels": {QUEUE_LABEL: "gpus"}},
        "spec": {"backoffLimit": 0,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }  # fmt: skip
    create(full_cluster, namespace, job)

    def pending_workload() -> dict[str, Any]:
        workloads = json.loads(
            full_cluster.kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "json")
        )["items"]
        reserved = condition(workloads[0], "QuotaReserved") if workloads else None
        return reserved if reserved and reserved["status"] == "False" else {}

    verdict = eventually(pending_workload, WAIT_S, "Kueue's verdict on the workload")
    assert "nvidia.com/gpu" in verdict["message"]
    assert get(full_cluster, namespace, "job", "tiny-i00-eval")["spec"]["suspend"] is True
    assert full_cluster.pods(namespace) == []

    full_cluster.set_gpu_quota(namespace, "gpus", 8)

    wait_for_condition(full_cluster, namespace, "job", "tiny-i00-eval", "Complete")
    assert get(full_cluster, namespace, "job", "tiny-i00-eval")["spec"]["suspend"] is False

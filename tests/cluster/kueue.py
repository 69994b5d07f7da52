"""Kueue queues for a test namespace: a ResourceFlavor, a ClusterQueue and a LocalQueue.

Kueue (v0.19, API kueue.x-k8s.io/v1beta2) admits a workload labelled
`kueue.x-k8s.io/queue-name: <LocalQueue>` once its ClusterQueue has quota for every resource
the workload's pods request; until then the job stays suspended.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
FLAVOR = "default-flavor"
# Generous CPU, memory and scratch quota: the tests queue on GPUs. A queue must cover
# ephemeral-storage because phase pods request their scratch space (README, "Pod settings").
CPU_QUOTA = "1000"
MEMORY_QUOTA = "64Ti"
SCRATCH_QUOTA = "1000Ti"


def resource_flavor() -> dict[str, Any]:
    """The one flavor every test ClusterQueue uses; it matches any node."""
    return {"apiVersion": API_VERSION, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}}


def cluster_queue_name(namespace: str, name: str) -> str:
    return f"{namespace}-{name}"


def gpu_quota_patch(gpus: int) -> dict[str, Any]:
    """The ClusterQueue spec that sets the `nvidia.com/gpu` quota to `gpus`."""
    quotas = [
        {"name": "cpu", "nominalQuota": CPU_QUOTA},
        {"name": "memory", "nominalQuota": MEMORY_QUOTA},
        {"name": "ephemeral-storage", "nominalQuota": SCRATCH_QUOTA},
        {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
    ]
    group = {
        "coveredResources": ["cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"],
        "flavors": [{"name": FLAVOR, "resources": quotas}],
    }
    return {"spec": {"resourceGroups": [group]}}


def cluster_queue(
    namespace: str, name: str, gpus: int, preempt_lower_priority: bool = False
) -> dict[str, Any]:
    """A ClusterQueue serving `namespace` only, with `gpus` GPUs of quota (0: none); with
    `preempt_lower_priority`, a workload that does not fit evicts workloads of lower
    priority in the queue (Kueue's default is never to preempt)."""
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    spec = {"namespaceSelector": selector, **gpu_quota_patch(gpus)["spec"]}
    if preempt_lower_priority:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    metadata = {"name": cluster_queue_name(namespace, name)}
    return {"apiVersion": API_VERSION, "kind": "ClusterQueue", "metadata": metadata, "spec": spec}


def local_queue(namespace: str, name: str) -> dict[str, Any]:
    """The LocalQueue `name` that jobs in `namespace` name in their queue-name label."""
    return {
        "apiVersion": API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue_name(namespace, name)},
    }


def workload_priority_class(name: str, value: int) -> dict[str, Any]:
    """A WorkloadPriorityClass: a job labelled `PRIORITY_CLASS_LABEL: name` has priority
    `value` in Kueue (a job without one has its pods' priority, 0 by default)."""
    return {"apiVersion": API_VERSION, "kind": "WorkloadPriorityClass",
            "metadata": {"name": name}, "value": value}  # fmt: skip


def queued_gpu_job(
    namespace: str, name: str, queue: str, gpus: int, priority_class: str
) -> dict[str, Any]:
    """A batch/v1 Job of one pod asking for `gpus` GPUs, queued in LocalQueue `queue` with
    the WorkloadPriorityClass `priority_class`; created suspended, as Kueue wants."""
    container = {
        "name": "work",
        "image": "busybox",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"nvidia.com/gpu": str(gpus)}},
    }  # fmt: skip
    labels = {QUEUE_LABEL: queue, PRIORITY_CLASS_LABEL: priority_class}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }

"""Kueue queues for a test namespace: a ResourceFlavor, a ClusterQueue and a LocalQueue.

Kueue (v0.19, API kueue.x-k8s.io/v1beta2) admits a workload labelled
`kueue.x-k8s.io/queue-name: <LocalQueue>` once its ClusterQueue has quota for every resource
the workload's pods request; until then the job stays suspended.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
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


def cluster_queue(namespace: str, name: str, gpus: int) -> dict[str, Any]:
    """A ClusterQueue serving `namespace` only, with `gpus` GPUs of quota (0: none)."""
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    spec = {"namespaceSelector": selector, **gpu_quota_patch(gpus)["spec"]}
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

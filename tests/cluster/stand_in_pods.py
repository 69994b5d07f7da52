"""The pods the Kubeflow controllers would create for a PyTorchJob or a TrainJob, built the way
they build them, so that the fast-mode workload layer creates them through the real API
server's admission (Pod Security, ServiceAccount) before it calls a child Running.

Read from the controllers' sources in the Go module cache:
- training-operator v1.9.4 (pkg/controller.v1/pytorch): pod `<job>-<replica type>-<index>` from
  the replica's template, labelled training.kubeflow.org/job-name; a Worker also gets the init
  container `init-pytorch` (its default template in initcontainer.go, image alpine:3.10)
  that waits for the Master's DNS name, without a securityContext.
- Trainer v2.2.1 and v2.3.0 alike (pkg/runtime/core/trainingruntime.go; v2.3.0 reads the
  runtime from its snapshot ConfigMap `<trainjob>-runtime-snapshot` once it has made one): the
  runtime's `node` Job template with each runtimePatches entry applied as a strategic merge
  patch, then trainer.{image, command, env, resourcesPerNode} on container `node`; JobSet labels
  the pods jobset.sigs.k8s.io/jobset-name.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

INIT_PYTORCH = {
    "name": "init-pytorch",
    "image": "alpine:3.10",
    "imagePullPolicy": "IfNotPresent",
    "resources": {
        "limits": {"cpu": "100m", "memory": "20Mi"},
        "requests": {"cpu": "50m", "memory": "10Mi"},
    },
}
TRAINER_NODE = "node"


def merged(base: Any, patch: Any) -> Any:
    """A strategic merge patch as it treats pod specs: maps merge key by key, lists of named
    items (containers, volumes, env) merge by name, any other list is replaced."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merged(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            by_name[item["name"]] = merged(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, Mapping) and "name" in item for item in items)


def _pod(
    name: str, template: Mapping[str, Any], labels: Mapping[str, str], owner: Mapping[str, Any]
) -> dict[str, Any]:
    metadata = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**(metadata.get("labels") or {}), **labels},
            "annotations": dict(metadata.get("annotations") or {}),
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def _owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }


def pytorchjob_pods(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods training-operator v1.9.4 creates for `job` (Master first)."""
    name = job["metadata"]["name"]
    pods = []
    for replica_type, replica in job["spec"]["pytorchReplicaSpecs"].items():
        rtype = replica_type.lower()
        for index in range(replica.get("replicas", 1)):
            labels = {
                "training.kubeflow.org/job-name": name,
                "training.kubeflow.org/replica-type": rtype,
                "training.kubeflow.org/replica-index": str(index),
            }
            pod = _pod(f"{name}-{rtype}-{index}", replica["template"], labels, job)
            if rtype == "worker":
                command = ["sh", "-c", f"until nslookup {name}-master-0; do sleep 2; done"]
                init = {**copy.deepcopy(INIT_PYTORCH), "command": command}
                pod["spec"]["initContainers"] = [*pod["spec"].get("initContainers", []), init]
            pods.append(pod)
    return pods


def trainjob_pods(trainjob: Mapping[str, Any], runtime: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods Trainer v2.2.1 and JobSet create for `trainjob` on `runtime`."""
    name = trainjob["metadata"]["name"]
    [node_job] = [
        job for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]
        if job["name"] == TRAINER_NODE
    ]  # fmt: skip
    job_template: Any = node_job["template"]
    for patch in trainjob["spec"].get("runtimePatches") or []:
        template_patch = patch.get("trainingRuntimeSpec", {}).get("template", {})
        for job_patch in template_patch.get("spec", {}).get("replicatedJobs", []):
            if job_patch["name"] == TRAINER_NODE:
                job_template = merged(job_template, job_patch.get("template", {}))
    pod_template = copy.deepcopy(job_template["spec"]["template"])
    pod_template["spec"].setdefault("restartPolicy", "Never")
    trainer = trainjob["spec"]["trainer"]
    container = {
        "name": TRAINER_NODE,
        "image": trainer["image"],
        "command": trainer["command"],
        "env": trainer.get("env", []),
        "resources": trainer.get("resourcesPerNode", {}),
    }
    pod_template["spec"]["containers"] = merged(pod_template["spec"]["containers"], [container])
    labels = {"jobset.sigs.k8s.io/jobset-name": name}
    return [
        _pod(f"{name}-{TRAINER_NODE}-0-{index}", pod_template, labels, trainjob)
        for index in range(trainer.get("numNodes", 1))
    ]

"""Kubeflow PyTorchJob (kubeflow.org/v1, training-operator v1.9): one Master, nodes-1 Workers.

The training operator sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK and
PET_MASTER_ADDR/PORT, which torchrun reads, so the command is the same on every pod.
Conditions follow training-operator v1.9.4 (pkg/util/status.go): Succeeded or Failed
True ends the job; Suspended True while Kueue holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rloop_operator.launchers.base import (
    ApiResource,
    ChildStatus,
    Launcher,
    LaunchRequest,
    status_from_conditions,
    true_condition,
)


class PyTorchJobLauncher(Launcher):
    resource = ApiResource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
    # Pods and Services are <job>-master-0 and <job>-worker-<i>, i < nodes - 1 <= 1023.
    longest_derived_suffix = "-worker-1022"
    install_hint = (
        "install the Kubeflow training operator v1.9, or create the run again with "
        "spec.resources.launcher: trainjob"
    )

    def manifest(self, request: LaunchRequest) -> dict[str, Any]:
        # The training operator wants the container named "pytorch".
        template = request.pod.template("pytorch")
        replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
        if request.nodes > 1:
            replicas["Worker"] = {
                "replicas": request.nodes - 1,
                "restartPolicy": "Never",
                "template": template,
            }
        # runPolicy.suspend is left to Kueue. Retries are the operator's, so the training
        # operator must not restart a failed job; cleanPodPolicy Running deletes the pods
        # still running when the job ends (the workers of a failed attempt would hold their
        # GPUs while the retry waits for them) and keeps the failed ones for `kubectl logs`.
        spec = {
            "nprocPerNode": str(request.procs_per_node),
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "Running"},
            "pytorchReplicaSpecs": replicas,
        }
        return self._object(request, spec)

    def status(self, status: Mapping[str, Any]) -> ChildStatus:
        running = true_condition(status, "Running") is not None
        return status_from_conditions(status, "Succeeded", running)

    def pod_selector(self, name: str) -> str:
        return f"training.kubeflow.org/job-name={name}"

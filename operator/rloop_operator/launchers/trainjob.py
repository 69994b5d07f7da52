"""Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1, Trainer v2.2+, on JobSet).

Read from github.com/kubeflow/trainer/v2@v2.2.1 (pkg/apis/trainer/v1alpha1/trainjob_types.go,
pkg/runtime/framework/plugins/{torch,jobset}, manifests/base/runtimes/torch_distributed.yaml)
and checked against v2.3.0, where all of it holds: v2.3 adds a runtime snapshot (ConfigMap
`<trainjob>-runtime-snapshot`, owned by the TrainJob, read instead of the runtime once made)
and JobSpecPatch.terminationGracePeriodSeconds, neither of which the launcher needs.

- The TrainJob becomes a JobSet of the same name whose replicated Job `node` runs one pod per
  node, container `node`. The torch plugin sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK
  (the Job completion index) and PET_MASTER_ADDR/PORT (<trainjob>-node-0-0.<trainjob>:29500),
  which torchrun reads; PET_* in trainer.env are refused by its webhook.
- trainer.{image,command,env,numNodes,numProcPerNode,resourcesPerNode} set the `node`
  container; everything else about the pod goes through spec.runtimePatches, one entry per
  manager (listType map). Ours is `rloop.io/operator`; Kueue writes `kueue.x-k8s.io/manager`.
  Patches allow pod labels and annotations, volumes, the pod's and the container's
  securityContext, container volumeMounts, serviceAccountName, nodeSelector, affinity and
  tolerations; not priorityClassName (the spec refuses it with this launcher) nor
  automountServiceAccountToken (the runtime's pod template decides it).
- spec.suspend belongs to Kueue; the operator never writes it (and never updates a TrainJob).
- Conditions: Complete and Failed are copied from the JobSet's Completed/Failed (reasons
  AllJobsCompleted, FailedJobs); Suspended True while suspended. When the JobSet fails, the
  JobSet controller deletes its still active Jobs (foreground), so the other nodes' pods go
  and free their GPUs; the failed Job keeps its failed pod, readable with `kubectl logs`.
- JobSet labels every pod jobset.sigs.k8s.io/jobset-name=<trainjob>.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rloop_operator.launchers.base import (
    ApiResource,
    ChildStatus,
    Launcher,
    LaunchRequest,
    Prerequisite,
    RuntimeRefSpec,
    status_from_conditions,
)

GROUP, VERSION = "trainer.kubeflow.org", "v1alpha1"
RUNTIMES = {
    "ClusterTrainingRuntime": ApiResource(
        GROUP, VERSION, "clustertrainingruntimes", "ClusterTrainingRuntime", namespaced=False
    ),
    "TrainingRuntime": ApiResource(GROUP, VERSION, "trainingruntimes", "TrainingRuntime"),
}
PATCH_MANAGER = "rloop.io/operator"
# The replicated Job and container of the trainer in Kubeflow's torch runtimes.
TRAINER_NODE = "node"


class TrainJobLauncher(Launcher):
    resource = ApiResource(GROUP, VERSION, "trainjobs", "TrainJob")
    # JobSet pods are <jobset>-<replicatedJob>-<job index>-<pod index>-<5 random>, with the
    # JobSet named after the TrainJob; JobSet's webhook checks the same bound.
    longest_derived_suffix = f"-{TRAINER_NODE}-0-1023-abcde"
    install_hint = "install Kubeflow Trainer v2.2 or later, with JobSet"
    prerequisite_resources = tuple(RUNTIMES.values())
    # A TrainJob cannot set its Job's backoffLimit (JobSpecPatch has only the pod template),
    # and torch-distributed leaves it at the Job default: six pod retries in place.
    retries_pods_in_place = True

    def manifest(self, request: LaunchRequest) -> dict[str, Any]:
        template = request.pod.template(TRAINER_NODE)
        [container] = template["spec"]["containers"]
        trainer = {
            "image": container["image"],
            "command": container["command"],
            "env": container["env"],
            "numNodes": request.nodes,
            "numProcPerNode": request.procs_per_node,
            "resourcesPerNode": container["resources"],
        }
        runtime = request.runtime
        spec = {
            "runtimeRef": {"apiGroup": GROUP, "kind": runtime.kind, "name": runtime.name},
            "trainer": trainer,
            "runtimePatches": [
                {"manager": PATCH_MANAGER, "trainingRuntimeSpec": _runtime_patch(template)}
            ],
        }
        return self._object(request, spec)

    def status(self, status: Mapping[str, Any]) -> ChildStatus:
        running = any(job.get("active") for job in status.get("jobsStatus") or [])
        return status_from_conditions(status, "Complete", running)

    def pod_selector(self, name: str) -> str:
        return f"jobset.sigs.k8s.io/jobset-name={name}"

    def prerequisites(self, runtime: RuntimeRefSpec) -> tuple[Prerequisite, ...]:
        hint = (
            "install Kubeflow Trainer v2.2 or later (it ships ClusterTrainingRuntime "
            "torch-distributed) or create it"
            if runtime.kind == "ClusterTrainingRuntime"
            else "create it in the run's namespace"
        )
        return (
            Prerequisite(RUNTIMES[runtime.kind], runtime.name, "spec.resources.runtimeRef", hint),
        )


def _runtime_patch(template: dict[str, Any]) -> dict[str, Any]:
    """Our runtimePatches entry: everything about the trainer pod that `trainer` cannot say.
    Trainer v2.2's PodSpecPatch has no automountServiceAccountToken (README says so)."""
    pod = template["spec"]
    [container] = pod["containers"]
    node = {
        "name": TRAINER_NODE,
        "volumeMounts": container["volumeMounts"],
        "securityContext": container["securityContext"],
    }
    pod_patch: dict[str, Any] = {
        "volumes": pod["volumes"],
        "containers": [node],
        "securityContext": pod["securityContext"],
    }
    for field in ("nodeSelector", "tolerations", "affinity", "serviceAccountName"):
        if field in pod:
            pod_patch[field] = pod[field]
    job_template = {"spec": {"template": {"metadata": template["metadata"], "spec": pod_patch}}}
    return {
        "template": {"spec": {"replicatedJobs": [{"name": TRAINER_NODE, "template": job_template}]}}
    }

"""Manifests of a run's children; each carries its phase config (phase_config.py). Pure.

Each child's pod is built once here, the same whatever launcher runs it; the stage's
launcher (launchers/) wraps it into a PyTorchJob, a TrainJob or a batch/v1 Job. DAPO and
RFT run under torchrun, which reads the PET_* variables both Kubeflow launchers set, so
the container command is the same on every pod. The phase config travels inline in the
command (`--config-json`): it is small, visible in `kubectl get -o yaml`, and the exact
command can be run anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from rloop_contract.tracking import CREDENTIALS_DIR_ENV

from rloop_operator.api import GROUP, KIND, VERSION, RLoopRunSpec
from rloop_operator.children import (
    ANNOTATION_RUN_NAME,
    LABEL_ITERATION,
    LABEL_QUEUE,
    LABEL_RUN,
    LABEL_STAGE,
)
from rloop_operator.launchers import LaunchRequest, PhasePod
from rloop_operator.lifecycle import Stage
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView
from rloop_operator.pod_template import TRACKING_CREDENTIALS, TRACKING_VOLUME
from rloop_operator.stages import launcher_for, phase_seed, rl_steps_before, stage_info
from rloop_operator.stall_watch import probe_period

DEFAULT_TRAINER_IMAGE = "ghcr.io/rloop-io/rloop-trainer:0.1.0"
SCRATCH = "/scratch"
# Every phase writes why it failed here, and filter and eval their report; the operator
# reads it from the pod status.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# The trainer's heartbeat, which the liveness probe reads (rloop_trainer.progress).
PROGRESS_ENV = "RLOOP_PROGRESS_PATH"
PROGRESS_PATH = f"{SCRATCH}/progress.json"


@dataclass(frozen=True)
class ManifestSettings:
    """Operator-wide settings that shape children (from the operator's environment)."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE


def progress_probe_command(progress_timeout: timedelta) -> list[str]:
    """The phase container's exec liveness probe (rloop_trainer.progress): it fails, and
    leaves "stalled at step N since T" as the termination message, once the phase has made
    no progress for `progress_timeout`. `rloop run`'s watchdog runs the same."""
    return ["rloop-trainer-probe", "--stalled-after", str(int(progress_timeout.total_seconds()))]


def liveness_probe(spec: RLoopRunSpec) -> dict[str, Any] | None:
    """The phase container's probe of spec.resources.progressTimeout; None when it is 0.
    Probed every tenth of the timeout (1 to 60 s); a probe may take 30 s on a starved node
    without killing a healthy phase, and two failures in a row end the container (a probe
    that only timed out leaves no message: the pod's own reason is then the status's)."""
    seconds = spec.resources.progress_timeout_seconds
    if seconds is None:
        return None
    timeout = timedelta(seconds=seconds)
    return {
        "exec": {"command": progress_probe_command(timeout)},
        "periodSeconds": int(probe_period(timeout)),
        "timeoutSeconds": 30,
        "failureThreshold": 2,
    }


def trainer_config(run: RunView, iteration: int, stage: Stage) -> dict[str, Any]:
    """The phase config of the stage's trainer (its builder in the stage table), with the
    run it belongs to and its seed."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    ref = {
        "namespace": run.namespace, "name": run.name, "uid": run.uid, "iteration": iteration,
        "rl_step": rl_steps_before(spec, iteration, stage),
    }  # fmt: skip
    body = stage_info(stage).config(spec, run.layout, iteration)
    body |= {"run": ref, "seed": phase_seed(spec, iteration, stage)}
    if spec.tracking.backends:
        body["tracking"] = spec.tracking.model_dump() | {
            "files_uri": run.layout.tracking(),
            "run_spec": spec.model_dump(mode="json", by_alias=True),
            "selection_metric": spec.selection_metric,
        }
    return body


def trainer_command(run: RunView, iteration: int, stage: Stage) -> list[str]:
    """The exact command of the child's container; `rloop run` executes the same."""
    info = stage_info(stage)
    config = json.dumps(trainer_config(run, iteration, stage), sort_keys=True)
    trainer = ["rloop-trainer", info.phase, "--config-json", config]
    return ["torchrun", "--no-python", *trainer] if info.distributed else trainer


def _pod_labels(run: RunView, iteration: int, stage: Stage) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "rloop-operator",
        LABEL_RUN: run.name,
        LABEL_ITERATION: str(iteration),
        LABEL_STAGE: stage_info(stage).slug,
    }


def _metadata(run: RunView, request: CreateChild) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    labels = _pod_labels(run, request.iteration, request.stage)
    # Kueue reads the queue from the child object; its pods are admitted with it.
    if spec.resources.queue_name:
        labels[LABEL_QUEUE] = spec.resources.queue_name
    return {
        "name": request.name,
        "namespace": run.namespace,
        "labels": labels,
        "annotations": {ANNOTATION_RUN_NAME: run.name},
        "ownerReferences": [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": run.name,
                "uid": run.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _env(spec: RLoopRunSpec) -> list[dict[str, Any]]:
    storage = spec.storage
    env: list[dict[str, Any]] = [
        {"name": "TMPDIR", "value": SCRATCH},
        {"name": "HF_HOME", "value": f"{SCRATCH}/hf"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    if storage.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage.region})
    if storage.credentials_secret:
        env += [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": storage.credentials_secret, "key": key}},
            }
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
    if spec.tracking.credentials_secrets:
        env.append({"name": CREDENTIALS_DIR_ENV, "value": TRACKING_CREDENTIALS})
    return env


def _volumes(
    spec: RLoopRunSpec, gpu_pod: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): scratch space, /dev/shm on GPU pods, the storage volume, and the
    trackers' Secrets (read-only; rloop_trainer.tracking.credentials reads them)."""
    # No sizeLimit: checkpoints are staged here, and the kubelet would evict a pod over it.
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    if gpu_pod:
        # NCCL needs a large shared-memory segment; the container default is 64 MiB.
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm_size}}
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if spec.storage.volume is not None:
        claim = {"claimName": spec.storage.volume.claim_name}
        volumes.append({"name": "storage", "persistentVolumeClaim": claim})
        mounts.append({"name": "storage", "mountPath": spec.storage.volume.mount_path})
    secrets = spec.tracking.credentials_secrets
    if secrets:
        sources = [{"secret": {"name": name}} for name in secrets]
        volumes.append({"name": TRACKING_VOLUME, "projected": {"sources": sources}})
        mounts.append(
            {"name": TRACKING_VOLUME, "mountPath": TRACKING_CREDENTIALS, "readOnly": True}
        )
    return volumes, mounts


def _requests_and_gpus(spec: RLoopRunSpec, stage: Stage) -> tuple[dict[str, str], int]:
    """CPU, memory and scratch (ephemeral-storage) requests and GPUs of one pod of the stage."""
    resources = spec.resources
    on_gpu_nodes = {
        "cpu": resources.cpu,
        "memory": resources.memory,
        "ephemeral-storage": resources.scratch_size,
    }
    info = stage_info(stage)
    if info.distributed:
        return on_gpu_nodes, resources.gpus_per_node
    if info.gpu_node:
        return on_gpu_nodes, min(resources.gpus_per_node, 1)
    cpu_node = {
        "cpu": spec.filter.cpu,
        "memory": spec.filter.memory,
        "ephemeral-storage": spec.filter.scratch_size,
    }
    return cpu_node, 0


def _resources(spec: RLoopRunSpec, stage: Stage, gpu_pod: bool) -> dict[str, Any]:
    """Requests and limits of the phase container. Pods on the GPU nodes are Guaranteed
    (CPU and memory limits equal their requests): the kubelet evicts them last, and its CPU
    manager can pin their cores for NCCL and the data loaders. Scratch is requested, never
    limited: a phase that stages a larger checkpoint is not evicted for it."""
    requests, gpus = _requests_and_gpus(spec, stage)
    limits: dict[str, Any] = {}
    if gpu_pod:
        limits = {"cpu": requests["cpu"], "memory": requests["memory"]}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    template = spec.resources.pod_template
    if gpu_pod and template is not None:
        limits.update(template.limits)
    return {"requests": requests, "limits": limits}


def _with_pod_template(spec: RLoopRunSpec, pod: PhasePod, gpu_pod: bool) -> PhasePod:
    """spec.resources.podTemplate on top of our pod. Labels, annotations, env, volumes and
    mounts go on every pod: the filter reads and writes the same store, so a CA bundle or a
    proxy setting must reach it too. Affinity goes on the pods of the GPU nodes only, like
    nodeSelector and tolerations (a GPU-node affinity would leave the filter unschedulable);
    so do the extra limits (_resources)."""
    template = spec.resources.pod_template
    if template is None:
        return pod
    return replace(
        pod,
        labels={**template.labels, **pod.labels},
        annotations={**pod.annotations, **template.annotations},
        affinity=template.affinity if gpu_pod else None,
        env=(*pod.env, *(v.model_dump(by_alias=True, exclude_none=True) for v in template.env)),
        volumes=(*pod.volumes, *template.volumes),
        mounts=(
            *pod.mounts,
            *(m.model_dump(by_alias=True, exclude_defaults=True) for m in template.volume_mounts),
        ),
    )


def phase_pod(run: RunView, request: CreateChild, settings: ManifestSettings) -> PhasePod:
    """The child's pod, whatever launcher will wrap it."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    info = stage_info(request.stage)
    gpu_pod = info.gpu_node
    volumes, mounts = _volumes(spec, gpu_pod)
    env = [
        *_env(spec),
        {"name": "RLOOP_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
        {"name": PROGRESS_ENV, "value": PROGRESS_PATH},
    ]
    pod = PhasePod(
        phase=info.phase,
        labels=_pod_labels(run, request.iteration, request.stage),
        image=spec.resources.image or settings.trainer_image,
        command=tuple(trainer_command(run, request.iteration, request.stage)),
        env=tuple(env),
        resources=_resources(spec, request.stage, gpu_pod),
        volumes=tuple(volumes),
        mounts=tuple(mounts),
        node_selector=spec.resources.node_selector if gpu_pod else {},
        tolerations=tuple(spec.resources.tolerations) if gpu_pod else (),
        priority_class_name=spec.resources.priority_class_name,
        termination_message_path=TERMINATION_MESSAGE_PATH,
        service_account_name=spec.resources.service_account_name,
        liveness_probe=liveness_probe(spec),
    )
    return _with_pod_template(spec, pod, gpu_pod)


def child_manifest(
    run: RunView, request: CreateChild, settings: ManifestSettings
) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    distributed = stage_info(request.stage).distributed
    launch = LaunchRequest(
        metadata=_metadata(run, request),
        pod=phase_pod(run, request, settings),
        nodes=spec.resources.nodes if distributed else 1,
        procs_per_node=max(spec.resources.gpus_per_node, 1) if distributed else 1,
        runtime=spec.resources.trainjob_runtime,
    )
    return launcher_for(spec, request.stage).manifest(launch)

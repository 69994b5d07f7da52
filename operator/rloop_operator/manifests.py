"""Manifests of a run's children; each carries its phase config (phase_config.py). Pure.

DAPO and RFT run as Kubeflow PyTorchJobs (kubeflow.org/v1): the training operator
sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK and PET_MASTER_ADDR/PORT, which
torchrun reads, so the container command is the same on every pod. The filter and
the evaluation run as batch/v1 Jobs. The phase config travels inline in the
command (`--config-json`): it is small, visible in `kubectl get -o yaml`, and the
exact command can be run anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rloop_operator.api import GROUP, KIND, VERSION, RLoopRunSpec, Stage
from rloop_operator.children import (
    ANNOTATION_RUN_NAME,
    LABEL_ITERATION,
    LABEL_QUEUE,
    LABEL_RUN,
    LABEL_STAGE,
    STAGE_SLUG,
    ChildKind,
    kind_of,
    run_label,
)
from rloop_operator.phase_config import phase_config
from rloop_operator.plan import CreateChild, RunView

PHASE_OF_STAGE = {
    Stage.EXPLORING: "dapo",
    Stage.FILTERING: "filter",
    Stage.CONSOLIDATING: "rft",
    Stage.EVALUATING: "eval",
}
DEFAULT_TRAINER_IMAGE = "ghcr.io/rloop-io/rloop-trainer:0.1.0"
SCRATCH = "/scratch"
# Filter and eval write their report here too; the operator reads it from the pod status.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class ManifestSettings:
    """Operator-wide settings that shape children (from the operator's environment)."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE


def trainer_command(run: RunView, iteration: int, stage: Stage) -> list[str]:
    """The exact command of the child's container; `rloop run` executes the same."""
    phase = PHASE_OF_STAGE[stage]
    config = json.dumps(phase_config(run, iteration, stage), sort_keys=True)
    trainer = ["rloop-trainer", phase, "--config-json", config]
    return (
        ["torchrun", "--no-python", *trainer] if kind_of(stage) is ChildKind.PYTORCHJOB else trainer
    )


def _labels(run: RunView, iteration: int, stage: Stage) -> dict[str, str]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    labels = {
        "app.kubernetes.io/managed-by": "rloop-operator",
        LABEL_RUN: run_label(run.name),
        LABEL_ITERATION: str(iteration),
        LABEL_STAGE: STAGE_SLUG[stage],
    }
    if spec.resources.queue_name:
        labels[LABEL_QUEUE] = spec.resources.queue_name
    return labels


def _metadata(run: RunView, request: CreateChild) -> dict[str, Any]:
    return {
        "name": request.name,
        "namespace": run.namespace,
        "labels": _labels(run, request.iteration, request.stage),
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
    return env


def _pod_template(
    run: RunView, request: CreateChild, container: dict[str, Any], gpu_pod: bool
) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    if gpu_pod:
        # NCCL needs a large shared-memory segment; the container default is 64 MiB.
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm_size}}
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        if spec.resources.node_selector:
            pod["nodeSelector"] = dict(spec.resources.node_selector)
        if spec.resources.tolerations:
            pod["tolerations"] = [dict(t) for t in spec.resources.tolerations]
    if spec.resources.priority_class_name:
        pod["priorityClassName"] = spec.resources.priority_class_name
    if spec.storage.volume is not None:
        claim = {"claimName": spec.storage.volume.claim_name}
        volumes.append({"name": "storage", "persistentVolumeClaim": claim})
        mounts.append({"name": "storage", "mountPath": spec.storage.volume.mount_path})
    container["volumeMounts"] = mounts
    return {"metadata": {"labels": _labels(run, request.iteration, request.stage)}, "spec": pod}


def _container(run: RunView, request: CreateChild, name: str, gpus: int) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    return {
        "name": name,
        "image": spec.resources.image or "",
        "command": trainer_command(run, request.iteration, request.stage),
        "env": _env(spec),
        "resources": {
            "requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory},
            "limits": {"nvidia.com/gpu": gpus} if gpus else {},
        },
    }


def pytorchjob(run: RunView, request: CreateChild, settings: ManifestSettings) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    gpus = spec.resources.gpus_per_node
    container = _container(run, request, "pytorch", gpus)  # the name the training operator wants
    container["image"] = container["image"] or settings.trainer_image
    template = _pod_template(run, request, container, gpu_pod=True)
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if spec.resources.nodes > 1:
        replicas["Worker"] = {
            "replicas": spec.resources.nodes - 1,
            "restartPolicy": "Never",
            "template": template,
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _metadata(run, request),
        # runPolicy.suspend is left to Kueue; retries are the operator's, so the
        # training operator must not restart a failed job on its own.
        "spec": {
            "nprocPerNode": str(max(gpus, 1)),
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
        },
    }


def batch_job(run: RunView, request: CreateChild, settings: ManifestSettings) -> dict[str, Any]:
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    evaluating = request.stage is Stage.EVALUATING
    gpus = 1 if evaluating and spec.resources.gpus_per_node else 0
    container = _container(run, request, PHASE_OF_STAGE[request.stage], gpus)
    container["image"] = container["image"] or settings.trainer_image
    if not evaluating:
        container["resources"]["requests"] = {"cpu": spec.filter.cpu, "memory": spec.filter.memory}
    container["terminationMessagePath"] = TERMINATION_MESSAGE_PATH
    container["env"].append(
        {"name": "RLOOP_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH}
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(run, request),
        "spec": {
            "backoffLimit": 0,
            "template": _pod_template(run, request, container, gpu_pod=evaluating),
        },
    }


def child_manifest(
    run: RunView, request: CreateChild, settings: ManifestSettings
) -> dict[str, Any]:
    if kind_of(request.stage) is ChildKind.PYTORCHJOB:
        return pytorchjob(run, request, settings)
    return batch_job(run, request, settings)

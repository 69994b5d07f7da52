"""Manifests of a run's children and the phase configs they hand to the trainer. Pure.

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
from rloop_operator.plan import CreateChild, RunView, produced_policy, starting_policy

PHASE_OF_STAGE = {
    Stage.EXPLORING: "dapo",
    Stage.FILTERING: "filter",
    Stage.CONSOLIDATING: "rft",
    Stage.EVALUATING: "eval",
}
DEFAULT_TRAINER_IMAGE = "ghcr.io/rloop-io/rloop-trainer:0.1.0"
SCRATCH = "/scratch"
# Every phase writes why it failed here, and filter and eval their report; the operator
# reads it from the pod status.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class ManifestSettings:
    """Operator-wide settings that shape children (from the operator's environment)."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE


def phase_seed(spec: RLoopRunSpec, iteration: int, stage: Stage) -> int:
    return spec.seed + 1000 * iteration + list(STAGE_SLUG).index(stage)


def phase_config(run: RunView, iteration: int, stage: Stage) -> dict[str, Any]:
    """The JSON the trainer parses into its phase config (rloop_trainer.config)."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    layout = run.layout
    ref = {"namespace": run.namespace, "name": run.name, "uid": run.uid, "iteration": iteration}
    common = {"run": ref, "seed": phase_seed(spec, iteration, stage)}
    if stage is Stage.EXPLORING:
        return common | _dapo_config(spec, run, iteration)
    if stage is Stage.FILTERING:
        return common | {
            "trajectories_uri": layout.trajectories(iteration),
            "output_uri": layout.expert(iteration),
            "hard_threshold": spec.filter.hard_threshold,
            "max_per_prompt": spec.filter.max_per_prompt,
            "dedupe": spec.filter.dedupe,
        }
    if stage is Stage.CONSOLIDATING:
        return common | _rft_config(spec, run, iteration)
    return common | {
        "policy_uri": produced_policy(spec, layout, iteration),
        "output_uri": layout.eval(iteration),
        "validation": [
            {"name": v.name, "uri": v.uri, "samples": v.samples, "pass_at": list(v.pass_at)}
            for v in spec.data.validation
        ],
        "max_prompt_tokens": spec.dapo.max_prompt_tokens,
        "max_response_tokens": spec.eval.max_response_tokens,
        "temperature": spec.eval.temperature,
        "top_p": spec.eval.top_p,
        "engine": spec.dapo.engine,
    }


def _dapo_config(spec: RLoopRunSpec, run: RunView, iteration: int) -> dict[str, Any]:
    dapo = spec.dapo
    steps = dapo.steps * spec.iterations if spec.mode == "vanilla" else dapo.steps
    return {
        "policy_uri": starting_policy(spec, run.layout, iteration),
        "train_data_uri": spec.data.train,
        "output_uri": run.layout.rl(iteration),
        "steps": steps,
        "group_size": dapo.group_size,
        "prompts_per_step": dapo.prompts_per_step,
        "max_prompt_tokens": dapo.max_prompt_tokens,
        "max_response_tokens": dapo.max_response_tokens,
        "temperature": dapo.temperature,
        "top_p": dapo.top_p,
        "clip_low": dapo.clip_low,
        "clip_high": dapo.clip_high,
        "dual_clip": dapo.dual_clip,
        "dynamic_sampling": dapo.dynamic_sampling,
        "max_generation_rounds": dapo.max_generation_rounds,
        "updates_per_step": dapo.updates_per_step,
        "overlong_buffer": dapo.overlong_buffer,
        "overlong_penalty": dapo.overlong_penalty,
        "overlong_filtering": dapo.overlong_filtering,
        "checkpoint_every": dapo.checkpoint_every,
        "engine": dapo.engine,
        "training": {
            "lr": dapo.lr,
            "warmup_steps": dapo.warmup_steps,
            "grad_clip": dapo.grad_clip,
            "micro_batch": dapo.micro_batch,
            "zero_stage": dapo.zero_stage,
        },
    }


def _rft_config(spec: RLoopRunSpec, run: RunView, iteration: int) -> dict[str, Any]:
    layout = run.layout
    return {
        "policy_uri": starting_policy(spec, layout, iteration),
        "expert_uri": layout.expert_data(iteration),
        "output_uri": layout.policy(iteration + 1),
        "checkpoint_uri": layout.rft_checkpoints(iteration),
        "epochs": spec.rft.epochs,
        "batch_size": spec.rft.batch_size,
        "max_seq_tokens": spec.rft.max_seq_tokens,
        "training": {
            "lr": spec.rft.lr,
            "warmup_steps": spec.rft.warmup_steps,
            "micro_batch": spec.rft.micro_batch,
            "zero_stage": spec.rft.zero_stage,
        },
    }


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
    termination = {"name": "RLOOP_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH}
    return {
        "name": name,
        "image": spec.resources.image or "",
        "command": trainer_command(run, request.iteration, request.stage),
        "env": [*_env(spec), termination],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
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

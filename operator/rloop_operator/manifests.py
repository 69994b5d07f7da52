"""Manifests of a run's children and the phase configs they hand to the trainer. Pure.

Each child's pod is built once here, the same whatever launcher runs it; the stage's
launcher (launchers/) wraps it into a PyTorchJob, a TrainJob or a batch/v1 Job. DAPO and
RFT run under torchrun, which reads the PET_* variables both Kubeflow launchers set, so
the container command is the same on every pod. The phase config travels inline in the
command (`--config-json`): it is small, visible in `kubectl get -o yaml`, and the exact
command can be run anywhere.
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
)
from rloop_operator.launchers import LaunchRequest, PhasePod, launcher_for
from rloop_operator.layout import RunLayout
from rloop_operator.plan import CreateChild, RunView, produced_policy, starting_policy
from rloop_operator.stages import STAGE_SLUG, stage_info

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
        "analysis": _analysis_config(spec, layout, iteration),
    }


def _analysis_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> dict[str, Any]:
    """Every evaluation of the run so far (this one last) and every DAPO phase's metrics,
    placed on the run's RL steps, for the analysis the eval phase refreshes."""
    phase_steps = spec.dapo.steps * spec.iterations if spec.mode == "vanilla" else spec.dapo.steps
    done = range(iteration + 1)
    return {
        "output_uri": layout.analysis(),
        "evaluations": [
            {"label": f"iter {k + 1}", "iteration": k + 1, "rl_steps": phase_steps * (k + 1),
             "eval_uri": layout.eval(k)}
            for k in done
        ],
        "dapo_metrics": [
            {"metrics_uri": layout.dapo_metrics(k), "first_step": phase_steps * k} for k in done
        ],
    }  # fmt: skip


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
    info = stage_info(stage)
    config = json.dumps(phase_config(run, iteration, stage), sort_keys=True)
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
    return env


def _volumes(
    spec: RLoopRunSpec, gpu_pod: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): scratch space, /dev/shm on GPU pods, and the storage volume."""
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
    return volumes, mounts


def _requests_and_gpus(spec: RLoopRunSpec, stage: Stage) -> tuple[dict[str, str], int]:
    """CPU/memory requests and GPUs of one pod of the stage."""
    resources = spec.resources
    if stage_info(stage).distributed:
        return {"cpu": resources.cpu, "memory": resources.memory}, resources.gpus_per_node
    if stage is Stage.EVALUATING:
        return {"cpu": resources.cpu, "memory": resources.memory}, min(resources.gpus_per_node, 1)
    return {"cpu": spec.filter.cpu, "memory": spec.filter.memory}, 0


def phase_pod(run: RunView, request: CreateChild, settings: ManifestSettings) -> PhasePod:
    """The child's pod, whatever launcher will wrap it."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    info = stage_info(request.stage)
    requests, gpus = _requests_and_gpus(spec, request.stage)
    gpu_pod = info.distributed or request.stage is Stage.EVALUATING
    volumes, mounts = _volumes(spec, gpu_pod)
    env = [
        *_env(spec),
        {"name": "RLOOP_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
    ]
    return PhasePod(
        phase=info.phase,
        labels=_pod_labels(run, request.iteration, request.stage),
        image=spec.resources.image or settings.trainer_image,
        command=tuple(trainer_command(run, request.iteration, request.stage)),
        env=tuple(env),
        resources={"requests": requests, "limits": {"nvidia.com/gpu": gpus} if gpus else {}},
        volumes=tuple(volumes),
        mounts=tuple(mounts),
        node_selector=spec.resources.node_selector if gpu_pod else {},
        tolerations=tuple(spec.resources.tolerations) if gpu_pod else (),
        priority_class_name=spec.resources.priority_class_name,
        termination_message_path=TERMINATION_MESSAGE_PATH,
    )


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

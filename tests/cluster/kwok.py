"""Fake GPU nodes and scripted pod lifecycles with kwok's Stage API.

kwok (sigs.k8s.io/kwok) plays the kubelet of every Node annotated `kwok.x-k8s.io/node:
fake`: it moves the pods bound there through Stages, Stage resources that it watches from
the API server (`--enable-crds=Stage`). Among the stages whose selector matches a pod, kwok
picks by weight and never picks a weight-0 stage while one with a positive weight matches
(pkg/utils/lifecycle/lifecycle.go, `Lifecycle.Match`). So the stock stages run at weight 0
and every scripted outcome at weight 1 overrides them for the pods it selects.

A pod is matched again only when it changes, so a script applies to pods that reach the
matching phase after it was created: script a child's pods before creating the child.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .procs import Server, start_server

FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SCRIPT_LABEL = "rloop.io/scripted-namespace"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
# Each fake node fits one training pod at the operator's default requests (16 CPU, 128Gi,
# 8 GPUs) with room for filter and eval pods beside it, like an 8-GPU cloud machine.
NODE_CAPACITY = {"cpu": "192", "memory": "2Ti", "pods": "110", "ephemeral-storage": "4Ti"}


@dataclass(frozen=True)
class Succeed:
    """Containers exit 0 `after_s` seconds after the pod starts running, leaving `message`
    (e.g. a filter report) as their termination message."""

    after_s: float
    message: str | None = None


@dataclass(frozen=True)
class Fail:
    """Containers exit with `exit_code` and `message` as their termination message."""

    exit_code: int
    message: str
    after_s: float = 1.0


@dataclass(frozen=True)
class KeepRunning:
    """The pod runs until it is deleted."""


@dataclass(frozen=True)
class Waiting:
    """The pod stays Pending with its containers waiting, e.g. reason `ImagePullBackOff`."""

    reason: str
    message: str


@dataclass(frozen=True)
class SlowDeletion:
    """A deleted pod keeps running for `after_s` seconds before it is gone, as a trainer
    that takes that long to stop after SIGTERM would."""

    after_s: float


PodOutcome = Succeed | Fail | KeepRunning | Waiting | SlowDeletion


@dataclass(frozen=True)
class PodSelection:
    """Pods of `namespace` carrying every label in `labels` and, if given, named in `names`."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    names: Sequence[str] = ()


def _jq(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)} if values else {
        "key": key, "operator": operator,
    }  # fmt: skip


def _phase_is(phase: str) -> list[dict[str, Any]]:
    return [
        _jq(".metadata.deletionTimestamp", "DoesNotExist"),
        _jq(".status.phase", "In", phase),
    ]


def _go_string(text: str) -> str:
    """`text` as a Go template string literal: JSON string escapes are valid Go escapes."""
    return json.dumps(text, ensure_ascii=False)


def _terminated_template(exit_code: int, reason: str, message: str | None) -> str:
    message_line = f"message: {{{{ {_go_string(message)} | Quote }}}}" if message else ""
    return f"""
{{{{ $now := Now }}}}
containerStatuses:
{{{{ range .spec.containers }}}}
- image: {{{{ .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: {exit_code}
      reason: {reason}
      {message_line}
      startedAt: {{{{ $now | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
phase: {"Succeeded" if exit_code == 0 else "Failed"}
"""


def _waiting_template(reason: str, message: str) -> str:
    # No timestamps: re-applying it changes nothing, so kwok patches the pod only once.
    return f"""
conditions:
- type: Ready
  status: "False"
  reason: ContainersNotReady
- type: ContainersReady
  status: "False"
  reason: ContainersNotReady
containerStatuses:
{{{{ range .spec.containers }}}}
- image: {{{{ .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
      reason: {{{{ {_go_string(reason)} | Quote }}}}
      message: {{{{ {_go_string(message)} | Quote }}}}
{{{{ end }}}}
phase: Pending
"""


def _stage(
    name: str, selector: dict[str, Any], step: dict[str, Any], delay_s: float, weight: int
) -> dict[str, Any]:
    """A Stage that takes the selected pods one `step` (kwok's StageNext) after `delay_s`."""
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": selector,
        "weight": weight,
        "next": step,
    }
    if delay_s > 0:
        spec["delay"] = {"durationMilliseconds": round(delay_s * 1000)}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def scripted_stage(name: str, pods: PodSelection, outcome: PodOutcome) -> dict[str, Any]:
    """A weight-1 Stage that gives the `pods` their `outcome` instead of the default."""
    expressions = [_jq(".metadata.namespace", "In", pods.namespace)]
    if pods.names:
        expressions.append(_jq(".metadata.name", "In", *pods.names))
    step: dict[str, Any]
    match outcome:
        case Succeed(after_s, message):
            step, delay_s = (
                {"statusTemplate": _terminated_template(0, "Completed", message)},
                after_s,
            )
            expressions += _phase_is("Running")
        case Fail(exit_code, message, after_s):
            template = _terminated_template(exit_code, "Error", message)
            step, delay_s = {"statusTemplate": template}, after_s
            expressions += _phase_is("Running")
        case KeepRunning():
            # A patch that changes nothing: kwok skips it, and the pod keeps running.
            step, delay_s = {"statusTemplate": "phase: Running"}, 0.0
            expressions += _phase_is("Running")
        case Waiting(reason, message):
            step, delay_s = {"statusTemplate": _waiting_template(reason, message)}, 0.0
            expressions += _phase_is("Pending")
        case SlowDeletion(after_s):
            # kwok's stock pod-delete removes a deleted pod at once; this one waits.
            step, delay_s = {"delete": True}, after_s
            expressions.append(_jq(".metadata.deletionTimestamp", "Exists"))
    selector = {"matchLabels": dict(pods.labels), "matchExpressions": expressions}
    stage = _stage(name, selector, step, delay_s, weight=1)
    stage["metadata"]["labels"] = {SCRIPT_LABEL: pods.namespace}
    return stage


def default_stages(kwok_module: Path, complete_after_s: float) -> list[dict[str, Any]]:
    """kwok's stock fast stages, with pod-complete widened to every pod and delayed.

    The stock pod-complete only completes pods owned by a Job; pods of PyTorchJobs are
    owned by the PyTorchJob, so the ownerReferences condition is dropped.
    """
    stage_dir = kwok_module / "kustomize" / "stage"
    stages = [
        yaml.safe_load((stage_dir / "node" / "fast" / "node-initialize.yaml").read_text()),
        *(
            yaml.safe_load((stage_dir / "pod" / "fast" / f"{name}.yaml").read_text())
            for name in ("pod-ready", "pod-complete", "pod-delete")
        ),
    ]
    complete = stages[2]
    complete["spec"]["selector"]["matchExpressions"] = [
        expression
        for expression in complete["spec"]["selector"]["matchExpressions"]
        if expression["key"] != ".metadata.ownerReferences.[].kind"
    ]
    complete["spec"]["delay"] = {"durationMilliseconds": round(complete_after_s * 1000)}
    return stages


def fake_gpu_node(name: str, gpus: int, labels: Mapping[str, str]) -> dict[str, Any]:
    """A Node kwok manages, with `gpus` NVIDIA GPUs as the device plugin would report them."""
    resources = {**NODE_CAPACITY, "nvidia.com/gpu": str(gpus)}
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "nvidia.com/gpu.product": GPU_PRODUCT,
        "nvidia.com/gpu.count": str(gpus),
        **labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1]},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def start_kwok(binary: Path, kubeconfig: Path, work_dir: Path) -> Server:
    """kwok managing the annotated nodes with the Stage resources from the API server."""
    home = work_dir / "kwok-home"  # kwok reads ~/.kwok/kwok.yaml: keep the user's out
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--manage-nodes-with-annotation-selector=" + "=".join(FAKE_NODE_ANNOTATION),
        "--enable-crds=Stage",
        "--cidr=10.244.0.0/16",
    ]
    return start_server("kwok", argv, work_dir, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})

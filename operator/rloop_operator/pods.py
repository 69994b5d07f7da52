"""What the pods of one attempt say: whether they started, why they did not, whether they
can still write, and the messages their containers left. Pure; read from core/v1 Pod
objects as the API server serves them (camelCase JSON).

A pod that does not start says why in one of two places: the scheduler's PodScheduled
condition (reason Unschedulable, with a message such as "0/4 nodes are available: ...")
or the kubelet's waiting state of a container (ImagePullBackOff, ErrImagePull,
CreateContainerConfigError when a Secret or ConfigMap it names is missing, ...). Those
causes do not clear by themselves, unlike ContainerCreating or a pod not yet scheduled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rloop_operator.launchers.base import parse_time

# Waiting reasons of the kubelet that last until someone fixes the image, the Secret, ...
STUCK_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# The condition Kubernetes sets on a pod it is about to take away (k8s.io/api core/v1
# DisruptionTarget), its reason saying who: the Eviction API, the scheduler, the taint
# manager, the pod garbage collector (its node is gone) or the kubelet.
DISRUPTION_TARGET = "DisruptionTarget"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
STARTED_PHASES = frozenset({"Running", *FINISHED_PHASES})


@dataclass(frozen=True)
class Exit:
    """A container's terminated state."""

    container: str
    exit_code: int
    message: str


@dataclass(frozen=True)
class PodDisruption:
    """Why Kubernetes took the pod away: its DisruptionTarget condition (an eviction, a
    preemption, its node lost) or the kubelet's eviction under node pressure."""

    reason: str  # e.g. EvictionByEvictionAPI, PreemptionByScheduler, DeletionByPodGC, Evicted
    message: str


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str  # Pending, Running, Succeeded, Failed or Unknown
    node: str = ""  # spec.nodeName: empty until the scheduler binds the pod
    deleting: bool = False
    # (reason, message) of a cause that keeps the pod from starting (see STUCK_WAITING).
    stuck: tuple[str, str] | None = None
    exits: tuple[Exit, ...] = ()
    uid: str = ""
    created_at: datetime | None = None
    disruption: PodDisruption | None = None
    # Deleted from the API (known from the pod watch's memory): its containers have stopped.
    gone: bool = False

    @property
    def started(self) -> bool:
        return self.phase in STARTED_PHASES

    @property
    def may_write(self) -> bool:
        """Whether the pod may still write to the store: a pod bound to a node that has not
        finished (a Pending one may start yet, a terminating one runs until its containers
        stop). An unbound pod runs nothing; the controllers delete the pending pods of a
        failed attempt (Job controller, training operator cleanPodPolicy Running, JobSet).
        A pod gone from the API writes nothing, whatever its last seen phase."""
        return bool(self.node) and not self.gone and self.phase not in FINISHED_PHASES


# The pods of each child the reconciler read, by child name (Observed.pods).
Pods = Mapping[str, Sequence[PodState]]


@dataclass(frozen=True)
class NotStarted:
    """Why the pods of an attempt have not all started."""

    reason: str  # a stuck cause (e.g. Unschedulable), or PodsNotCreated / PodsPending
    message: str
    stuck: bool  # the cause lasts until someone fixes it


def pod_state(pod: Mapping[str, Any]) -> PodState:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]
    return PodState(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or "Pending"),
        node=str((pod.get("spec") or {}).get("nodeName") or ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        stuck=_stuck(status.get("conditions") or (), containers),
        exits=tuple(_exits(containers)),
        uid=str(metadata.get("uid") or ""),
        created_at=parse_time(metadata.get("creationTimestamp")),
        disruption=_disruption(status),
    )


def _disruption(status: Mapping[str, Any]) -> PodDisruption | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == DISRUPTION_TARGET and condition.get("status") == "True":
            return PodDisruption(
                str(condition.get("reason") or ""), str(condition.get("message") or "")
            )
    # A kubelet older than the condition says it only in the pod's own reason.
    if status.get("reason") == "Evicted":
        return PodDisruption("Evicted", str(status.get("message") or ""))
    return None


def _stuck(
    conditions: Iterable[Mapping[str, Any]], containers: Iterable[Mapping[str, Any]]
) -> tuple[str, str] | None:
    for condition in conditions:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", str(condition.get("message") or "")
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            return str(waiting["reason"]), str(waiting.get("message") or "")
    return None


def _exits(containers: Iterable[Mapping[str, Any]]) -> Iterable[Exit]:
    for container in containers:
        ended = (container.get("state") or {}).get("terminated")
        if ended is not None:
            yield Exit(
                str(container.get("name", "")),
                int(ended.get("exitCode", 0)),
                str(ended.get("message") or ""),
            )


def not_started(pods: Sequence[PodState], expected: int) -> NotStarted | None:
    """None once the attempt has started: `expected` pods run, or one has finished (a
    finished pod ran, and a pod the controller replaces in place is no start problem)."""
    if any(pod.phase in FINISHED_PHASES for pod in pods):
        return None
    started = sum(1 for pod in pods if pod.started)
    if started >= expected:
        return None
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.stuck is not None:
            reason, message = pod.stuck
            return NotStarted(reason, f"pod {pod.name}: {message}", stuck=True)
    if len(pods) < expected:
        return NotStarted("PodsNotCreated", f"{len(pods)} of {expected} pods exist", stuck=False)
    pending = ", ".join(sorted(pod.name for pod in pods if not pod.started))
    return NotStarted("PodsPending", f"pods not running yet: {pending}", stuck=False)


def writers(pods: Iterable[PodState]) -> list[str]:
    """The pods that may still write, as `name (phase[, terminating])`."""
    return [
        f"{pod.name} ({pod.phase}{', terminating' if pod.deleting else ''})"
        for pod in sorted(pods, key=lambda p: p.name)
        if pod.may_write
    ]


def termination_messages(pods: Iterable[PodState], succeeded: bool) -> list[str]:
    """Messages of the containers that exited 0 (`succeeded`) or non-zero."""
    return [
        exit.message
        for pod in pods
        for exit in pod.exits
        if exit.message and (exit.exit_code == 0) == succeeded
    ]

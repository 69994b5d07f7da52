"""What every launcher is: the API resource of its children, how it wraps a phase's pod into
a child manifest, how the child's status maps to a Phase, and how to find its pods. Pure.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from rloop_contract.schema import DNS_SUBDOMAIN, SpecSection

from rloop_operator.lifecycle import Phase


class RuntimeRefSpec(SpecSection):
    """spec.resources.runtimeRef: a Kubeflow Trainer runtime; Trainer v2.2 ships
    ClusterTrainingRuntime torch-distributed, the default."""

    name: Annotated[
        str,
        Field(
            min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the runtime."
        ),
    ] = "torch-distributed"
    kind: Annotated[
        Literal["ClusterTrainingRuntime", "TrainingRuntime"],
        Field(
            description=(
                "ClusterTrainingRuntime (cluster-wide) or TrainingRuntime (in the run's namespace)."
            )
        ),
    ] = "ClusterTrainingRuntime"


@dataclass(frozen=True)
class ChildStatus:
    """A child's status as a phase, with the reason and message of the condition behind it."""

    phase: Phase
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class Prerequisite:
    """An object the spec names that a launcher's children need before they are created."""

    resource: ApiResource
    name: str
    named_by: str  # the spec field that names it
    hint: str  # how to make it exist


# The trainer image's user and group (trainer_image/Dockerfile: USER 65532:65532). Phase pods
# meet the Pod Security "restricted" profile: non-root, no privilege escalation, no
# capabilities, the runtime's default seccomp profile.
TRAINER_UID = 65532
POD_SECURITY_CONTEXT: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": TRAINER_UID,
    "runAsGroup": TRAINER_UID,
    "fsGroup": TRAINER_UID,
    # Without it the kubelet chowns every file of the store's volume at each pod start: on
    # a shared filesystem with a run's checkpoints that alone can take many minutes.
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True)
class PhasePod:
    """One phase's pod, built once from the run's spec whatever launcher wraps it."""

    phase: str  # the trainer phase; names the container unless the launcher needs its own name
    labels: Mapping[str, str]
    image: str
    command: tuple[str, ...]
    env: tuple[Mapping[str, Any], ...]
    resources: Mapping[str, Any]
    volumes: tuple[Mapping[str, Any], ...]
    mounts: tuple[Mapping[str, Any], ...]
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    priority_class_name: str | None = None
    termination_message_path: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    affinity: Mapping[str, Any] | None = None
    # None: the namespace's default account, without an API token in the pod.
    service_account_name: str | None = None
    liveness_probe: Mapping[str, Any] | None = None

    def template(self, container_name: str | None = None) -> dict[str, Any]:
        """The pod as a core/v1 PodTemplateSpec with one container (named after the phase)."""
        container: dict[str, Any] = {
            "name": container_name or self.phase,
            "image": self.image,
            "command": list(self.command),
            "env": _plain(self.env),
            "resources": _plain(self.resources),
            "volumeMounts": _plain(self.mounts),
            "securityContext": _plain(CONTAINER_SECURITY_CONTEXT),
        }
        if self.termination_message_path is not None:
            container["terminationMessagePath"] = self.termination_message_path
        if self.liveness_probe is not None:
            container["livenessProbe"] = _plain(self.liveness_probe)
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "securityContext": _plain(POD_SECURITY_CONTEXT),
            "containers": [container],
            "volumes": _plain(self.volumes),
        }
        if self.service_account_name:
            pod["serviceAccountName"] = self.service_account_name
        else:
            # The trainer never calls the API server; a token it does not need is one to leak.
            pod["automountServiceAccountToken"] = False
        if self.node_selector:
            pod["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            pod["tolerations"] = _plain(self.tolerations)
        if self.affinity:
            pod["affinity"] = _plain(self.affinity)
        if self.priority_class_name:
            pod["priorityClassName"] = self.priority_class_name
        metadata: dict[str, Any] = {"labels": dict(self.labels)}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {"metadata": metadata, "spec": pod}


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists, so manifests never share nested objects."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return copy.copy(value)


@dataclass(frozen=True)
class LaunchRequest:
    """A child to create: its metadata, its pod, and how many nodes and processes it spans."""

    metadata: Mapping[str, Any]  # name, namespace, labels, annotations, ownerReferences
    pod: PhasePod
    nodes: int
    procs_per_node: int
    runtime: RuntimeRefSpec  # the Kubeflow Trainer runtime; other launchers ignore it

    @property
    def name(self) -> str:
        return str(self.metadata["name"])


def true_condition(status: Mapping[str, Any], *types: str) -> Mapping[str, Any] | None:
    # A finished child has its terminal condition True somewhere in its conditions, not
    # necessarily last (the training operator appends, and may add Restarting/Running after
    # a transient failure).
    for condition in status.get("conditions") or []:
        if condition.get("type") in types and condition.get("status") == "True":
            return dict(condition)
    return None


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (RFC 3339, e.g. 2026-12-04T10:00:00Z); None when unset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def status_from_conditions(status: Mapping[str, Any], succeeded: str, running: bool) -> ChildStatus:
    """Phase from the `succeeded`/Failed/Suspended conditions; `running` decides the rest.

    A Suspended child is queued (Kueue holds it): Pending, with the condition's reason
    Suspended and its message.
    """
    for phase, kind in ((Phase.SUCCEEDED, succeeded), (Phase.FAILED, "Failed")):
        condition = true_condition(status, kind)
        if condition is not None:
            return ChildStatus(
                phase,
                condition.get("reason", ""),
                condition.get("message", ""),
                parse_time(condition.get("lastTransitionTime")),
            )
    suspended = true_condition(status, "Suspended")
    if suspended is not None:
        return ChildStatus(Phase.PENDING, "Suspended", suspended.get("message", ""))
    return ChildStatus(Phase.RUNNING if running else Phase.PENDING)


class Launcher(ABC):
    """One kind of child object."""

    resource: ClassVar[ApiResource]
    # The most that names derived from a child's name add to it (pods, Services, Jobs);
    # the run name limit keeps every such name within 63 characters.
    longest_derived_suffix: ClassVar[str]
    # What to install when the cluster does not serve `resource`.
    install_hint: ClassVar[str]
    # Kinds of the objects prerequisites() may name; the operator may `get` them.
    prerequisite_resources: ClassVar[tuple[ApiResource, ...]] = ()
    # Whether the child's controller replaces a failed pod in place before the child fails
    # (the operator then ends it itself on a failure the trainer calls permanent).
    retries_pods_in_place: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return self.resource.kind

    @abstractmethod
    def manifest(self, request: LaunchRequest) -> dict[str, Any]:
        """The child object, ready to create."""

    @abstractmethod
    def status(self, status: Mapping[str, Any]) -> ChildStatus:
        """What the child's status says, read the way its controller writes it."""

    @abstractmethod
    def pod_selector(self, name: str) -> str:
        """Label selector of the pods of child `name`, as its controllers label them."""

    def prerequisites(self, runtime: RuntimeRefSpec) -> tuple[Prerequisite, ...]:
        """The objects a run's children of this kind need, given the run's Trainer runtime
        (spec.resources.runtimeRef or its default; launchers without one ignore it)."""
        return ()

    def logs_hint(self, namespace: str, name: str) -> str:
        return f"kubectl logs -n {namespace} -l {self.pod_selector(name)} --tail=200"

    def _object(self, request: LaunchRequest, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": self.resource.api_version,
            "kind": self.kind,
            "metadata": _plain(request.metadata),
            "spec": spec,
        }

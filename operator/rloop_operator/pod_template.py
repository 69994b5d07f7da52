"""spec.resources.podTemplate: what a cluster adds to the phase pods, validated against ours.

Multi-node training on real clusters needs pod settings the operator cannot guess: labels
and annotations (a Multus network), affinity, NCCL_* env, volumes and mounts, extended
resources such as rdma/hca. The overlay carries them; what the operator or a launcher sets
itself (a volume, env var, mount path, label or resource of ours) is refused here and by the
CRD's rules, with the same messages, so a collision never reaches a pod.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# The operator's pod volumes and where it mounts them (manifests.py).
RESERVED_VOLUMES = ("scratch", "dshm", "storage")
RESERVED_MOUNT_PATHS = ("/scratch", "/dev/shm", "/dev/termination-log")
# Env the operator sets (manifests.py) or the launchers set for torchrun and DDP.
RESERVED_ENV = (
    "TMPDIR", "HF_HOME", "PYTHONUNBUFFERED", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE",
    "RANK",
)  # fmt: skip
RESERVED_ENV_PREFIXES = ("PET_", "RLOOP_")
# Label keys the operator, Kueue and the launchers' controllers write on pods.
RESERVED_LABEL = "app.kubernetes.io/managed-by"
RESERVED_LABEL_PREFIXES = (
    "rloop.io/", "kueue.x-k8s.io/", "training.kubeflow.org/", "trainer.kubeflow.org/",
    "jobset.sigs.k8s.io/", "batch.kubernetes.io/",
)  # fmt: skip
RESERVED_RESOURCES = ("cpu", "memory", "nvidia.com/gpu", "ephemeral-storage")

ENV_RESERVED = (
    "resources.podTemplate.env: TMPDIR, HF_HOME, PYTHONUNBUFFERED, the AWS_* store settings, "
    "MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and names starting with PET_ or RLOOP_ are set "
    "by the operator or the launcher; choose another name"
)
VOLUME_RESERVED = (
    "resources.podTemplate.volumes: the names scratch, dshm and storage are the operator's "
    "volumes; choose another name"
)
MOUNT_RESERVED = (
    "resources.podTemplate.volumeMounts: /scratch, /dev/shm and /dev/termination-log are the "
    "operator's mounts (scratch space, NCCL shared memory, the phase's report); mount elsewhere"
)
MOUNT_PATH_TWICE = (
    "resources.podTemplate.volumeMounts[].mountPath must be unique; mount each path once"
)
VOLUME_TWICE = "resources.podTemplate.volumes[].name must be unique; name each volume once"
MOUNT_UNKNOWN_VOLUME = (
    "resources.podTemplate.volumeMounts[].name must name a volume of resources.podTemplate.volumes"
)
LABEL_RESERVED = (
    "resources.podTemplate.labels: app.kubernetes.io/managed-by and keys under rloop.io/, "
    "kueue.x-k8s.io/, "
    "training.kubeflow.org/, trainer.kubeflow.org/, jobset.sigs.k8s.io/ and "
    "batch.kubernetes.io/ are set by the operator, Kueue or the launchers (for the queue, "
    "set resources.queueName)"
)
LIMIT_RESERVED = (
    "resources.podTemplate.limits cannot set cpu, memory, nvidia.com/gpu or ephemeral-storage: "
    "set resources.cpu, resources.memory, resources.gpusPerNode or resources.scratchSize"
)
MOUNT_ON_STORAGE = (
    "resources.podTemplate.volumeMounts[].mountPath must differ from storage.volume.mountPath, "
    "where the operator mounts the store's volume"
)
_QUANTITY = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$"


class _Overlay(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class EnvVarSpec(_Overlay):
    """A core/v1 EnvVar: a value, or valueFrom a Secret, ConfigMap or field."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    value: str | None = None
    value_from: dict[str, Any] | None = None


class VolumeMountSpec(_Overlay):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    mount_path: Annotated[str, Field(min_length=1, max_length=512)]
    read_only: bool = False
    sub_path: Annotated[str, Field(max_length=512)] | None = None


class PodTemplateSpec(_Overlay):
    labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, max_length=64
    )
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)
    affinity: dict[str, Any] | None = None
    env: list[EnvVarSpec] = Field(default_factory=list, max_length=128)
    # core/v1 Volumes: the API server checks their shape when it creates the pods.
    volumes: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    volume_mounts: list[VolumeMountSpec] = Field(default_factory=list, max_length=64)
    limits: dict[str, int | Annotated[str, Field(pattern=_QUANTITY)]] = Field(
        default_factory=dict, max_length=16
    )

    @field_validator("env")
    @classmethod
    def _env_is_not_ours(cls, env: list[EnvVarSpec]) -> list[EnvVarSpec]:
        _refuse(ENV_RESERVED, [v.name for v in env if _reserved_env(v.name)])
        return env

    @field_validator("volumes")
    @classmethod
    def _volumes_are_named_and_not_ours(cls, volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not all(isinstance(v.get("name"), str) and v["name"] for v in volumes):
            raise ValueError("resources.podTemplate.volumes[].name is required")
        names = [v["name"] for v in volumes]
        _refuse(VOLUME_RESERVED, [name for name in names if name in RESERVED_VOLUMES])
        _refuse(VOLUME_TWICE, _repeated(names))
        return volumes

    @field_validator("volume_mounts")
    @classmethod
    def _mounts_are_not_ours(cls, mounts: list[VolumeMountSpec]) -> list[VolumeMountSpec]:
        paths = [m.mount_path for m in mounts]
        _refuse(MOUNT_RESERVED, [path for path in paths if path in RESERVED_MOUNT_PATHS])
        _refuse(MOUNT_PATH_TWICE, _repeated(paths))
        return mounts

    @field_validator("labels")
    @classmethod
    def _labels_are_not_ours(cls, labels: dict[str, str]) -> dict[str, str]:
        ours = [k for k in labels if k == RESERVED_LABEL or k.startswith(RESERVED_LABEL_PREFIXES)]
        _refuse(LABEL_RESERVED, ours)
        return labels

    @field_validator("limits")
    @classmethod
    def _limits_are_not_ours(cls, limits: dict[str, int | str]) -> dict[str, int | str]:
        _refuse(LIMIT_RESERVED, [name for name in limits if name in RESERVED_RESOURCES])
        return limits

    @model_validator(mode="after")
    def _mounts_name_our_volumes(self) -> PodTemplateSpec:
        names = {v["name"] for v in self.volumes}
        _refuse(MOUNT_UNKNOWN_VOLUME, [m.name for m in self.volume_mounts if m.name not in names])
        return self


def _reserved_env(name: str) -> bool:
    return name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES)


def _repeated(values: list[str]) -> list[str]:
    return sorted({value for value in values if values.count(value) > 1})


def _refuse(message: str, offending: list[str]) -> None:
    """The CRD's message (shared with its CEL rule), then the values that break it."""
    if offending:
        raise ValueError(f"{message}; got {', '.join(offending)}")

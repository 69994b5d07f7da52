"""spec.resources.podTemplate: what a cluster adds to the phase pods, validated against ours.

Multi-node training on real clusters needs pod settings the operator cannot guess: labels
and annotations (a Multus network), affinity, NCCL_* env, volumes and mounts, extended
resources such as rdma/hca. The overlay carries them; what the operator or a launcher sets
itself (a volume, env var, mount path, label or resource of ours) is refused here and by the
CRD's rules, with the same messages, so a collision never reaches a pod.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from rloop_contract.schema import QUANTITY, Crd, Rule, SpecSection

# The operator's pod volumes and where it mounts them (manifests.py).
# Where the trackers' credentials (spec.tracking.credentialsSecrets) are mounted.
TRACKING_VOLUME = "tracking"
TRACKING_CREDENTIALS = "/var/run/secrets/rloop/tracking"
RESERVED_VOLUMES = ("scratch", "dshm", "storage", TRACKING_VOLUME)
RESERVED_MOUNT_PATHS = ("/scratch", "/dev/shm", "/dev/termination-log", TRACKING_CREDENTIALS)
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
    "resources.podTemplate.volumes: the names scratch, dshm, storage and tracking are the "
    "operator's volumes; choose another name"
)
MOUNT_RESERVED = (
    "resources.podTemplate.volumeMounts: /scratch, /dev/shm, /dev/termination-log and "
    "/var/run/secrets/rloop/tracking are the operator's mounts (scratch space, NCCL shared "
    "memory, the phase's report, the trackers' credentials); mount elsewhere"
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


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _cel_prefixes(variable: str, prefixes: tuple[str, ...]) -> str:
    return " && ".join(f"!{variable}.startsWith('{prefix}')" for prefix in prefixes)


# The CRD's rules say what the validators below say, with the same messages.
_ENV_RULE = Rule(
    f"self.all(e, !(e.name in {_cel_list(RESERVED_ENV)}) && "
    f"{_cel_prefixes('e.name', RESERVED_ENV_PREFIXES)})",
    ENV_RESERVED,
)
_LABEL_RULE = Rule(
    f"self.all(k, k != '{RESERVED_LABEL}' && {_cel_prefixes('k', RESERVED_LABEL_PREFIXES)})",
    LABEL_RESERVED,
)
_VOLUME_RULES = (
    Rule(f"self.all(v, !(v.name in {_cel_list(RESERVED_VOLUMES)}))", VOLUME_RESERVED),
    Rule("self.all(v, self.exists_one(w, w.name == v.name))", VOLUME_TWICE),
)
_MOUNT_RULES = (
    Rule(f"self.all(m, !(m.mountPath in {_cel_list(RESERVED_MOUNT_PATHS)}))", MOUNT_RESERVED),
    Rule("self.all(m, self.exists_one(n, n.mountPath == m.mountPath))", MOUNT_PATH_TWICE),
)
_LIMIT_RULE = Rule(f"self.all(k, !(k in {_cel_list(RESERVED_RESOURCES)}))", LIMIT_RESERVED)
# A core/v1 Volume: the API server checks its shape when it creates the pods.
_VOLUME = Crd({
    "required": ["name"],
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 63,
                            "description": "Name of the volume; volumeMounts refer to it."}},
})  # fmt: skip


class EnvVarSpec(SpecSection):
    """A core/v1 EnvVar: a value, or valueFrom a Secret, ConfigMap or field."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="Name of the variable.")]
    value: Annotated[str, Field(description="Its value.")] | None = None
    value_from: (
        Annotated[
            dict[str, Any],
            Field(
                description=(
                    "Where the value comes from instead (core/v1 EnvVarSource, kubectl explain "
                    "pod.spec.containers.env.valueFrom)."
                )
            ),
        ]
        | None
    ) = None


class VolumeMountSpec(SpecSection):
    name: Annotated[
        str, Field(min_length=1, max_length=63, description=("The volume of volumes to mount."))
    ]
    mount_path: Annotated[
        str, Field(min_length=1, max_length=512, description=("Where the container sees it."))
    ]
    read_only: Annotated[bool, Field(description="Mount it read-only.")] | None = None
    sub_path: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=("A path inside the volume to mount instead of its root."),
            ),
        ]
        | None
    ) = None


class PodTemplateSpec(SpecSection):
    """Additions to the phase pods for what multi-node training needs on real clusters: labels
    and annotations (e.g. Multus k8s.v1.cni.cncf.io/networks), affinity, env (NCCL_*), volumes
    and their mounts, extended resource limits (rdma/hca). Labels, annotations, env, volumes
    and mounts go on every phase pod (the filter reads and writes the store too, so a CA
    bundle or a proxy setting reaches it); affinity and limits on the pods of the GPU nodes
    only (DAPO, RFT, evaluation: the pods nodeSelector and tolerations apply to), not on the
    filter's, which an RDMA limit or a GPU affinity would leave unschedulable. Every launcher
    carries all of it (PyTorchJob and Job in their pod templates, TrainJob through its
    runtimePatches entry, trainer.env and trainer.resourcesPerNode). Names the operator or a
    launcher sets are refused."""

    crd_rules = (
        Rule(
            "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
            "self.volumes.exists(v, v.name == m.name))",
            MOUNT_UNKNOWN_VOLUME,
        ),
    )

    labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]],
        Field(
            max_length=64,
            description=("Labels of the pods, e.g. for a NetworkPolicy or cost attribution."),
        ),
        _LABEL_RULE,
    ] = Field(default_factory=dict)
    annotations: Annotated[
        dict[str, str],
        Field(
            max_length=64,
            description=(
                "Annotations of the pods, e.g. k8s.v1.cni.cncf.io/networks for Multus secondary "
                "networks (RDMA)."
            ),
        ),
    ] = Field(default_factory=dict)
    affinity: (
        Annotated[
            dict[str, Any],
            Field(
                description=(
                    "A core/v1 Affinity for the pods (kubectl explain pod.spec.affinity), e.g. "
                    "nodeAffinity on a network-topology label or podAntiAffinity to spread the "
                    "nodes of a phase."
                )
            ),
        ]
        | None
    ) = None
    env: Annotated[
        list[EnvVarSpec],
        Field(
            max_length=128,
            description=(
                "Extra environment of the phase container (core/v1 EnvVar), e.g. NCCL_IB_HCA or "
                "NCCL_SOCKET_IFNAME."
            ),
        ),
        _ENV_RULE,
    ] = Field(default_factory=list)
    volumes: Annotated[
        list[Annotated[dict[str, Any], _VOLUME]],
        Field(
            max_length=64,
            description=(
                "Extra volumes of the pods (core/v1 Volume, kubectl explain pod.spec.volumes), "
                "mounted with volumeMounts."
            ),
        ),
        Crd(rules=_VOLUME_RULES),
    ] = Field(default_factory=list)
    volume_mounts: Annotated[
        list[VolumeMountSpec],
        Field(max_length=64, description=("Mounts of volumes into the phase container.")),
        Crd(rules=_MOUNT_RULES),
    ] = Field(default_factory=list)
    limits: Annotated[dict[str, int | Annotated[str, Field(pattern=QUANTITY)]], Field(
        max_length=16, description=(
            "Extra resource limits of the phase container, e.g. rdma/hca: 1 (extended "
            "resources get requests equal to their limits).")
    ), _LIMIT_RULE] = Field(default_factory=dict)  # fmt: skip

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

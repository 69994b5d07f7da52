"""The operator's own sections of the RLoopRun spec: the model, the data, the filter Job's pod,
the store, the selection of the best policy, and where the phase pods run. The sections the
trainer reads are the contract's (rloop_contract.sections); the CRD is generated from all of
them (hack/generate_api.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field
from rloop_contract.schema import (
    ABSOLUTE_PATH,
    CPU,
    DNS_SUBDOMAIN,
    DURATION,
    QUANTITY,
    Crd,
    OneOf,
    Rule,
    SpecSection,
    immutable,
    starts_with,
)
from rloop_contract.sections import SET_NAME, FilterSection, ValidationSet

from rloop_operator.launchers import TRAINING_LAUNCHERS, RuntimeRefSpec
from rloop_operator.pod_template import PodTemplateSpec

_DURATION_PART = re.compile(r"([0-9]+)([hms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}
_WORLD_SIZE = (
    "is immutable once the run exists; checkpoints are partitioned over the world size (create "
    "a new run from the last policy to change it)"
)


class ModelSpec(SpecSection):
    """The base model theta_0 that the first iteration starts from."""

    base: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            description=(
                "Location of the base model in Hugging Face format: s3://bucket/key/, file:///path "
                "(on a volume the pods mount) or hf://org/name (needs network in the pods)."
            ),
        ),
        starts_with("model.base", ("s3://", "file://", "hf://"), "hf://Qwen/Qwen2.5-Math-7B"),
    ]


class DataSpec(SpecSection):
    """Training prompts and optional validation sets."""

    train: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            description=(
                "Training prompts: a parquet or JSONL file (s3:// or file://) in the DAPO/verl "
                "shape (prompt, reward_model.ground_truth, data_source) or {id, problem, answer}."
            ),
        ),
        starts_with("data.train", ("s3://", "file://")),
    ]
    validation: Annotated[list[ValidationSet], Field(max_length=16, description=(
        "Validation sets; each iteration's new policy is evaluated on them (avg@n, pass@k)."
    )), Rule(
        "self.all(v, self.exists_one(w, w.name == v.name))",
        "data.validation names must be unique",
        lambda sets: len({s.name for s in sets}) == len(sets),
    )] = Field(default_factory=list)  # fmt: skip


class FilterSpec(FilterSection):
    """Selection of expert trajectories after each exploration phase."""

    cpu: Annotated[
        str, Field(pattern=CPU, description=("CPU request of the filter Job's pod."))
    ] = "2"
    memory: Annotated[
        str, Field(pattern=QUANTITY, description=("Memory request of the filter Job's pod."))
    ] = "8Gi"
    scratch_size: Annotated[str, Field(pattern=QUANTITY, description=(
        "Ephemeral-storage request of the filter Job's pod, for its /scratch (TMPDIR: the "
        "expert set is staged there)."))] = "10Gi"  # fmt: skip


class StorageVolumeSpec(SpecSection):
    claim_name: Annotated[
        str,
        Field(
            max_length=253,
            pattern=DNS_SUBDOMAIN,
            description=("PersistentVolumeClaim in the run's namespace."),
        ),
    ]
    mount_path: Annotated[str, Field(max_length=512, pattern=ABSOLUTE_PATH, description=(
        "Absolute path where the pods mount it; storage.uri must lie under it."))]  # fmt: skip


class StorageSpec(SpecSection):
    """Where trajectories, expert sets, checkpoints and policies are written."""

    crd_rules = (
        immutable("storage is immutable once the run exists; artifacts would be split across "
                  "stores"),
        Rule(
            "!has(self.endpoint) || self.uri.startsWith('s3://')",
            "storage.endpoint only applies to an s3:// storage.uri",
            lambda s: s.endpoint is None or s.uri.startswith("s3://"),
        ),
        Rule(
            "!has(self.volume) || self.uri == 'file://' + self.volume.mountPath || "
            "self.uri.startsWith('file://' + self.volume.mountPath + '/')",
            "storage.uri must lie under storage.volume.mountPath, e.g. file:///shared/rloop for "
            "mountPath /shared",
            lambda s: s.volume is None or s.uri == f"file://{s.volume.mount_path}"
            or s.uri.startswith(f"file://{s.volume.mount_path}/"),
        ),
    )  # fmt: skip

    uri: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            description=(
                "Root of the run's artifacts, s3://bucket/prefix or file:///path (in a cluster, on "
                "storage.volume)."
            ),
        ),
        starts_with("storage.uri", ("s3://", "file://"), "s3://my-bucket/rloop"),
    ]
    endpoint: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=("S3 endpoint URL for S3-compatible stores (MinIO, SeaweedFS, Ceph)."),
            ),
            Rule(
                "self.startsWith('http://') || self.startsWith('https://')",
                "storage.endpoint must be an http:// or https:// URL",
                lambda url: url.startswith(("http://", "https://")),
            ),
        ]
        | None
    ) = None
    region: Annotated[str, Field(max_length=64, description="S3 region.")] | None = None
    credentials_secret: (
        Annotated[
            str,
            Field(
                max_length=253,
                description=(
                    "Secret in the run's namespace with keys AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, exposed to the phase pods as env. Leave empty for "
                    "workload identity."
                ),
            ),
        ]
        | None
    ) = None
    volume: Annotated[StorageVolumeSpec, Field(description=(
        "A PersistentVolumeClaim (ReadWriteMany, e.g. NFS or Lustre) that every phase pod "
        "mounts, for a file:// storage.uri on a shared filesystem."))] | None = None  # fmt: skip


class SelectionSpec(SpecSection):
    """How status.best picks the best evaluated policy (the base policy included): the highest
    metric on one validation set, the paper's checkpoint selection. Only with
    data.validation."""

    validation_set: (
        Annotated[
            str,
            Field(
                pattern=SET_NAME,
                max_length=63,
                description=("A data.validation name; the first validation set when left out."),
            ),
        ]
        | None
    ) = None
    metric: Annotated[str, Field(pattern=r"^(avg@n|pass@[1-9][0-9]*)$", description=(
        "avg@n (the mean accuracy over the set's samples) or pass@k for a k in the set's "
        "passAt."))] = "avg@n"  # fmt: skip


class ResourcesSpec(SpecSection):
    """Where and how the phase pods run."""

    crd_rules = (
        Rule(
            "!has(self.runtimeRef) || (has(self.launcher) && self.launcher == 'trainjob')",
            "resources.runtimeRef only applies to resources.launcher: trainjob; set the launcher "
            "or remove runtimeRef",
            lambda r: r.runtime_ref is None or r.launcher == "trainjob",
        ),
        Rule(
            "!has(self.priorityClassName) || !has(self.launcher) || self.launcher != 'trainjob'",
            "resources.priorityClassName cannot be set with resources.launcher: trainjob (Trainer "
            "v2.2 runtimePatches cannot set it); set priorityClassName in the runtime's pod "
            "template instead",
            lambda r: r.priority_class_name is None or r.launcher != "trainjob",
        ),
        Rule(
            "!has(self.collectiveTimeout) || self.collectiveTimeout.matches('[1-9]')",
            "resources.collectiveTimeout must be longer than 0, e.g. 30m: every collective "
            "needs a limit",
            lambda r: r.collective_timeout_seconds > 0,
        ),
    )

    launcher: Annotated[
        str,
        OneOf(tuple(TRAINING_LAUNCHERS)),
        Field(
            description=(
                "What runs the DAPO and RFT phases: pytorchjob, a Kubeflow PyTorchJob "
                "(kubeflow.org/v1, needs the training operator v1.9), or trainjob, a Kubeflow "
                "Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1, needs Trainer v2.2+ with "
                "JobSet). The filter and evaluation always run as batch/v1 Jobs. Immutable: all "
                "children of a run are of one kind; create a new run to switch."
            )
        ),
        immutable(
            "resources.launcher is immutable once the run exists; create a new RLoopRun to switch "
            "launchers"
        ),
    ] = "pytorchjob"
    runtime_ref: (
        Annotated[
            RuntimeRefSpec,
            Field(
                description=(
                    "The Kubeflow Trainer runtime of the TrainJobs (launcher trainjob only); unset "
                    "means ClusterTrainingRuntime torch-distributed, which Trainer ships. A "
                    "runtime of your own must name its trainer replicated Job and container "
                    "`node`, as torch-distributed does. A runtime that does not exist blocks the "
                    "run (condition Blocked) until it is created."
                )
            ),
        ]
        | None
    ) = None
    nodes: Annotated[
        int,
        Field(
            ge=1,
            le=1024,
            description=(
                "Nodes of the DAPO and RFT phases (PyTorchJob: one Master plus nodes-1 Workers; "
                "TrainJob: trainer.numNodes). Immutable: a phase resumes checkpoints partitioned "
                "over its world size."
            ),
        ),
        immutable(f"resources.nodes {_WORLD_SIZE}"),
    ] = 1
    gpus_per_node: Annotated[
        int,
        Field(
            ge=0,
            le=16,
            description=(
                "nvidia.com/gpu per node; also torchrun's nproc-per-node. 0 runs on CPU. "
                "Immutable: a phase resumes checkpoints partitioned over its world size."
            ),
        ),
        immutable(f"resources.gpusPerNode {_WORLD_SIZE}"),
    ] = 8
    image: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=("Trainer image; defaults to the operator's configured trainer image."),
            ),
        ]
        | None
    ) = None
    cpu: Annotated[
        str,
        Field(
            pattern=CPU,
            description=(
                "CPU of each pod on the GPU nodes (DAPO, RFT, evaluation): its request and its "
                "limit (Guaranteed QoS)."
            ),
        ),
    ] = "16"
    memory: Annotated[
        str,
        Field(
            pattern=QUANTITY,
            description=(
                "Memory of each pod on the GPU nodes: its request and its limit (Guaranteed QoS); "
                "the in-memory /dev/shm counts against it."
            ),
        ),
    ] = "128Gi"
    shm_size: Annotated[
        str,
        Field(
            pattern=QUANTITY,
            description=(
                "Size of the in-memory /dev/shm volume (NCCL), counted in resources.memory."
            ),
        ),
    ] = "16Gi"
    node_selector: Annotated[
        dict[str, str], Field(description=("Node labels the phase pods must match."))
    ] = Field(default_factory=dict)
    tolerations: Annotated[
        list[Annotated[dict[str, Any], Crd({"x-kubernetes-preserve-unknown-fields": True})]],
        Field(description="Tolerations of the phase pods (core/v1 Toleration)."),
    ] = Field(default_factory=list)
    priority_class_name: (
        Annotated[
            str,
            Field(
                max_length=253,
                description=(
                    "PriorityClass of the phase pods (not with launcher trainjob: set it in the "
                    "runtime)."
                ),
            ),
        ]
        | None
    ) = None
    queue_name: (
        Annotated[
            str,
            Field(
                max_length=63,
                description=(
                    "Kueue LocalQueue; becomes the kueue.x-k8s.io/queue-name label on every child."
                ),
            ),
        ]
        | None
    ) = None
    start_timeout: Annotated[
        str,
        Field(
            min_length=1,
            pattern=DURATION,
            description=(
                "How long the pods of one attempt of a phase may take to start, e.g. 30m, 1h30m, "
                "90s; 0 means no limit. An attempt whose pods have not all started by then "
                "(unschedulable, image pull failing, a missing Secret) is deleted and counts as a "
                "failure, retried up to spec.maxRetries, with a message saying what the pods were "
                "waiting for. The clock starts when the child is created, or when Kueue admits it: "
                "time queued does not count."
            ),
        ),
    ] = "30m"
    collective_timeout: Annotated[
        str,
        Field(
            min_length=1,
            pattern=DURATION,
            description=(
                "How long a collective of a DAPO or RFT phase (all-reduce, barrier, ...) may "
                "wait for its ranks, e.g. 30m: a rank that stops answering (a frozen process, a "
                "lost node) makes the others fail within this time, naming it; the pods end, their "
                "GPUs are freed and the stage is retried from its latest checkpoint."
            ),
        ),
    ] = "30m"
    progress_timeout: Annotated[
        str,
        Field(
            min_length=1,
            pattern=DURATION,
            description=(
                "How long a phase may go without finishing a step before it is treated as hung, "
                "whatever the cause (a store call that never returns, a deadlocked generation): "
                "the phase container's liveness probe ends it with reason Stalled, naming the last "
                "step and when, and the stage is retried from its latest checkpoint; 0 means no "
                "limit. It must exceed the longest stretch between two steps, the start (model "
                "download, engine start) included. Launcher trainjob: Trainer's container patch "
                "has no probe, so set the probe in the runtime (README)."
            ),
        ),
    ] = "1h"
    service_account_name: (
        Annotated[
            str,
            Field(
                max_length=253,
                pattern=DNS_SUBDOMAIN,
                description=(
                    "ServiceAccount of the phase pods, e.g. one bound to a cloud role for workload "
                    "identity to the store (then leave storage.credentialsSecret empty). Unset: "
                    "the namespace's default account, and no API token is mounted in the pods "
                    "(automountServiceAccountToken false; with launcher trainjob set that in the "
                    "runtime, which runtimePatches cannot)."
                ),
            ),
        ]
        | None
    ) = None
    scratch_size: Annotated[
        str,
        Field(
            pattern=QUANTITY,
            description=(
                "Ephemeral-storage request of each pod on the GPU nodes (DAPO, RFT, evaluation) "
                "for its /scratch emptyDir (TMPDIR and HF_HOME: model downloads, compile caches, "
                "checkpoints staged before upload). A request, not a limit: the scheduler places "
                "the pod where this much is free, and a pod that writes more is not evicted for it "
                "(only under node disk pressure, first among the pods over their requests). The "
                "filter's is filter.scratchSize."
            ),
        ),
    ] = "100Gi"
    pod_template: PodTemplateSpec | None = None  # fmt: skip

    @property
    def trainjob_runtime(self) -> RuntimeRefSpec:
        """The runtime of the run's TrainJobs: runtimeRef, or Kubeflow's torch runtime."""
        return self.runtime_ref or RuntimeRefSpec()

    @property
    def start_timeout_seconds(self) -> float | None:
        """spec.resources.startTimeout in seconds; None when it is 0 (never)."""
        return float(duration_seconds(self.start_timeout)) or None

    @property
    def collective_timeout_seconds(self) -> int:
        return duration_seconds(self.collective_timeout)

    @property
    def progress_timeout_seconds(self) -> int | None:
        """spec.resources.progressTimeout in seconds; None when it is 0 (never)."""
        return duration_seconds(self.progress_timeout) or None


def duration_seconds(duration: str) -> int:
    """A duration as the CRD's pattern allows it (30m, 1h30m, 90s, 0) in seconds."""
    return sum(int(count) * _SECONDS[unit] for count, unit in _DURATION_PART.findall(duration))

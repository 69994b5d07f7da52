"""Typed RLoopRun spec and status, parsed once at the edge.

The CRD in crds/rlooprun.yaml is the source of truth; the API server applies its
defaults and CEL rules. These models repeat the defaults and cross-field rules so
that `rloop run` (no API server) behaves the same, and a unit test keeps the two
in step. Field names are the API's camelCase through aliases.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from rloop_operator.pod_template import MOUNT_ON_STORAGE, PodTemplateSpec

GROUP = "rloop.io"
VERSION = "v1alpha1"
PLURAL = "rloopruns"
KIND = "RLoopRun"

# Kubernetes resource quantities, as the CRD's patterns accept them.
_CPU = r"^[0-9]+(\.[0-9]+)?m?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_ABSOLUTE_PATH = r"^(/[A-Za-z0-9._-]+)+$"
# A duration as hours, minutes and seconds, e.g. 30m, 1h30m, 90s; 0 means never.
_DURATION = r"^(0|([0-9]+h)?([0-9]+m)?([0-9]+s)?)$"
_DURATION_PART = re.compile(r"([0-9]+)([hms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and the fix."""


class _Api(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


def _require_scheme(value: str, field: str, schemes: tuple[str, ...]) -> str:
    if not value.startswith(schemes):
        raise ValueError(f"{field} must start with {', '.join(schemes)}; got {value!r}")
    return value


class ModelSpec(_Api):
    base: Annotated[str, Field(min_length=1)]

    @field_validator("base")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return _require_scheme(value, "model.base", ("s3://", "file://", "hf://"))


class ValidationSetSpec(_Api):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]+$", max_length=63)]
    uri: str
    samples: Annotated[int, Field(ge=1, le=1024)] = 32
    pass_at: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 8, 16, 32])

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return _require_scheme(value, "data.validation[].uri", ("s3://", "file://"))

    @model_validator(mode="after")
    def _k_within_samples(self) -> ValidationSetSpec:
        if any(k > self.samples for k in self.pass_at):
            raise ValueError(
                "every data.validation[].passAt value must be at most samples; "
                "raise samples or drop that k"
            )
        return self


class DataSpec(_Api):
    train: Annotated[str, Field(min_length=1)]
    validation: list[ValidationSetSpec] = Field(default_factory=list, max_length=16)

    @field_validator("train")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return _require_scheme(value, "data.train", ("s3://", "file://"))

    @model_validator(mode="after")
    def _unique_names(self) -> DataSpec:
        names = [v.name for v in self.validation]
        if len(names) != len(set(names)):
            raise ValueError("data.validation names must be unique")
        return self


class DapoSpec(_Api):
    steps: Annotated[int, Field(ge=1, le=100_000)] = 200
    group_size: Annotated[int, Field(ge=2, le=1024)] = 16
    prompts_per_step: Annotated[int, Field(ge=1, le=65536)] = 512
    max_prompt_tokens: Annotated[int, Field(ge=1, le=131072)] = 1024
    max_response_tokens: Annotated[int, Field(ge=1, le=131072)] = 2048
    temperature: Annotated[float, Field(gt=0, le=10)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    clip_low: Annotated[float, Field(ge=0, le=1)] = 0.2
    clip_high: Annotated[float, Field(ge=0, le=1)] = 0.28
    dual_clip: Annotated[float, Field(gt=1)] = 3.0
    lr: Annotated[float, Field(gt=0)] = 1e-6
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    weight_decay: Annotated[float, Field(ge=0)] = 0.1
    grad_clip: Annotated[float, Field(gt=0)] = 1.0
    micro_batch: Annotated[int, Field(ge=1)] = 4
    zero_stage: Literal[1, 2, 3] = 2
    dynamic_sampling: bool = True
    oversample: Annotated[int, Field(ge=1, le=16)] = 3
    max_generation_rounds: Annotated[int, Field(ge=1, le=32)] = 10
    updates_per_step: Annotated[int, Field(ge=1, le=1024)] = 16
    overlong_buffer: Annotated[int, Field(ge=0)] = 512
    overlong_penalty: Annotated[float, Field(ge=0)] = 1.0
    overlong_filtering: bool = False
    checkpoint_every: Annotated[int, Field(ge=1)] = 50
    engine: Literal["auto", "vllm", "hf"] = "auto"

    @model_validator(mode="after")
    def _cross_field(self) -> DapoSpec:
        if self.overlong_buffer >= self.max_response_tokens:
            raise ValueError("dapo.overlongBuffer must be smaller than dapo.maxResponseTokens")
        if self.clip_high < self.clip_low:
            raise ValueError("dapo.clipHigh must be at least dapo.clipLow (clip-higher)")
        if self.prompts_per_step % self.updates_per_step:
            raise ValueError(
                "dapo.promptsPerStep must be a multiple of dapo.updatesPerStep "
                "(every update takes promptsPerStep / updatesPerStep prompt groups)"
            )
        return self


class FilterSpec(_Api):
    hard_threshold: float = 0.1
    max_per_prompt: Annotated[int, Field(ge=0)] = 0
    dedupe: bool = True
    cpu: Annotated[str, Field(pattern=_CPU)] = "2"
    memory: Annotated[str, Field(pattern=_QUANTITY)] = "8Gi"
    scratch_size: Annotated[str, Field(pattern=_QUANTITY)] = "10Gi"

    @field_validator("hard_threshold")
    @classmethod
    def _in_unit_interval(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError("filter.hardThreshold must be in (0, 1]; the paper uses 0.1")
        return value


class RftSpec(_Api):
    epochs: Annotated[int, Field(ge=1, le=100)] = 1
    lr: Annotated[float, Field(gt=0)] = 1e-5
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    micro_batch: Annotated[int, Field(ge=1)] = 4
    batch_size: Annotated[int, Field(ge=1)] = 64
    max_seq_tokens: Annotated[int, Field(ge=2, le=262144)] = 4096
    zero_stage: Literal[1, 2, 3] = 2


class RewardSpec(_Api):
    format: Literal["boxed-or-answer", "boxed", "answer-line", "any"] = "boxed-or-answer"


class EvalSpec(_Api):
    max_response_tokens: Annotated[int, Field(ge=1, le=131072)] = 2048
    temperature: Annotated[float, Field(gt=0, le=10)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0


class RuntimeRefSpec(_Api):
    """A Kubeflow Trainer runtime; Trainer v2.2 ships ClusterTrainingRuntime torch-distributed."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)] = (
        "torch-distributed"
    )
    kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] = "ClusterTrainingRuntime"


class ResourcesSpec(_Api):
    launcher: Literal["pytorchjob", "trainjob"] = "pytorchjob"
    runtime_ref: RuntimeRefSpec | None = None
    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    gpus_per_node: Annotated[int, Field(ge=0, le=16)] = 8
    image: Annotated[str, Field(max_length=512)] | None = None
    cpu: Annotated[str, Field(pattern=_CPU)] = "16"
    memory: Annotated[str, Field(pattern=_QUANTITY)] = "128Gi"
    shm_size: Annotated[str, Field(pattern=_QUANTITY)] = "16Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    queue_name: Annotated[str, Field(max_length=63)] | None = None
    start_timeout: Annotated[str, Field(pattern=_DURATION, min_length=1)] = "30m"
    service_account_name: Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)] | None = (
        None
    )
    scratch_size: Annotated[str, Field(pattern=_QUANTITY)] = "100Gi"
    pod_template: PodTemplateSpec | None = None

    @model_validator(mode="after")
    def _trainjob_fields(self) -> ResourcesSpec:
        if self.runtime_ref is not None and self.launcher != "trainjob":
            raise ValueError(
                "resources.runtimeRef only applies to resources.launcher: trainjob; "
                "set the launcher or remove runtimeRef"
            )
        if self.priority_class_name is not None and self.launcher == "trainjob":
            raise ValueError(
                "resources.priorityClassName cannot be set with resources.launcher: trainjob "
                "(Trainer v2.2 runtimePatches cannot set it); set priorityClassName in the "
                "runtime's pod template instead"
            )
        return self

    @property
    def trainjob_runtime(self) -> RuntimeRefSpec:
        """The runtime of the run's TrainJobs: runtimeRef, or Kubeflow's torch runtime."""
        return self.runtime_ref or RuntimeRefSpec()

    @property
    def start_timeout_seconds(self) -> float | None:
        """spec.resources.startTimeout in seconds; None when it is 0 (never)."""
        parts = _DURATION_PART.findall(self.start_timeout)
        seconds = sum(int(count) * _SECONDS[unit] for count, unit in parts)
        return float(seconds) or None


class StorageVolumeSpec(_Api):
    claim_name: Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)]
    mount_path: Annotated[str, Field(max_length=512, pattern=_ABSOLUTE_PATH)]


class StorageSpec(_Api):
    uri: Annotated[str, Field(min_length=1)]
    endpoint: str | None = None
    region: str | None = None
    credentials_secret: str | None = None
    volume: StorageVolumeSpec | None = None

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return _require_scheme(value, "storage.uri", ("s3://", "file://"))

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            _require_scheme(value, "storage.endpoint", ("http://", "https://"))
        return value

    @model_validator(mode="after")
    def _endpoint_needs_s3(self) -> StorageSpec:
        if self.endpoint is not None and not self.uri.startswith("s3://"):
            raise ValueError("storage.endpoint only applies to an s3:// storage.uri")
        return self

    @model_validator(mode="after")
    def _uri_on_the_volume(self) -> StorageSpec:
        if self.volume is None:
            return self
        root = f"file://{self.volume.mount_path}"
        if self.uri != root and not self.uri.startswith(root + "/"):
            raise ValueError(
                "storage.uri must lie under storage.volume.mountPath, "
                f"e.g. {root}/rloop for mountPath {self.volume.mount_path}"
            )
        return self


class SelectionSpec(_Api):
    """Which evaluated policy is the run's best (status.best): the paper's checkpoint
    selection on a validation set."""

    validation_set: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]+$", max_length=63)] | None = None
    metric: Annotated[str, Field(pattern=r"^(avg@n|pass@[1-9][0-9]*)$")] = "avg@n"


class RLoopRunSpec(_Api):
    model: ModelSpec
    data: DataSpec
    storage: StorageSpec
    iterations: Annotated[int, Field(ge=1, le=99)] = 3
    mode: Literal["rloop", "vanilla"] = "rloop"
    seed: Annotated[int, Field(ge=0)] = 0
    dapo: DapoSpec = DapoSpec()
    filter: FilterSpec = FilterSpec()
    rft: RftSpec = RftSpec()
    reward: RewardSpec = RewardSpec()
    eval: EvalSpec = EvalSpec()
    selection: SelectionSpec = SelectionSpec()
    resources: ResourcesSpec = ResourcesSpec()
    suspend: bool = False
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2

    @model_validator(mode="after")
    def _pod_template_mounts_beside_the_store(self) -> RLoopRunSpec:
        template, volume = self.resources.pod_template, self.storage.volume
        if template is None or volume is None:
            return self
        if any(m.mount_path == volume.mount_path for m in template.volume_mounts):
            raise ValueError(f"{MOUNT_ON_STORAGE}; got {volume.mount_path}")
        return self

    @property
    def total_iterations(self) -> int:
        """Iterations the run reports; in vanilla mode, windows of its one DAPO run."""
        return self.iterations

    @model_validator(mode="after")
    def _selection_on_a_validation_set(self) -> RLoopRunSpec:
        chosen = self.selection.validation_set
        names = [v.name for v in self.data.validation]
        if chosen is not None and chosen not in names:
            raise ValueError(
                f"selection.validationSet {chosen!r} is not in data.validation "
                f"(names: {names}); name one of them or leave it out for the first"
            )
        metric = self.selection.metric
        if names and metric.startswith("pass@"):
            target = next(v for v in self.data.validation if v.name == (chosen or names[0]))
            if int(metric.removeprefix("pass@")) not in target.pass_at:
                raise ValueError(
                    f"selection.metric {metric!r} is not computed on validation set "
                    f"{target.name!r} (its passAt is {target.pass_at}); add that k to its passAt "
                    "or choose avg@n"
                )
        return self

    @property
    def selection_metric(self) -> str | None:
        """The metric status.best maximises, as evaluations name it (e.g. aime24/avg@32);
        None without validation sets."""
        sets = {v.name: v for v in self.data.validation}
        if not sets:
            return None
        chosen = sets[self.selection.validation_set or self.data.validation[0].name]
        metric = self.selection.metric
        figure = f"avg@{chosen.samples}" if metric == "avg@n" else metric
        return f"{chosen.name}/{figure}"


def parse_spec(raw: dict[str, Any]) -> RLoopRunSpec:
    """Parse a spec dict; raises SpecError listing each bad field as spec.<path>."""
    try:
        return RLoopRunSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            path = ".".join(str(part) for part in ("spec", *item["loc"]))
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = (
                    "unknown field; remove it or check its spelling (kubectl explain rlooprun.spec)"
                )
            problems.append(f"{path}: {message}")
        raise SpecError("; ".join(problems)) from exc


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Stage(StrEnum):
    NONE = ""
    EVALUATING_BASE = "EvaluatingBase"  # iteration 0 only: theta_0, before any RL step
    EXPLORING = "Exploring"
    FILTERING = "Filtering"
    CONSOLIDATING = "Consolidating"
    EVALUATING = "Evaluating"


class Condition(_Api):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: datetime
    observed_generation: int | None = None


class IterationRecord(_Api):
    index: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    base_eval_job: str | None = None
    rl_job: str | None = None
    filter_job: str | None = None
    rft_job: str | None = None
    eval_job: str | None = None
    failed_jobs: tuple[str, ...] = ()
    trajectories: int | None = None
    hard_prompts: int | None = None
    expert_samples: int | None = None
    policy: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class BestPolicy(_Api):
    """The evaluated policy with the highest spec.selection metric (the earliest of equals)."""

    iteration: int  # iterations completed behind it; 0 is the base policy
    policy: str
    metric: str
    value: float


class RLoopRunStatus(_Api):
    """The status subresource. Everything the operator decides from lives here or in
    the children, never only in memory."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    phase: Phase = Phase.PENDING
    stage: Stage = Stage.NONE
    iteration: int = 0
    progress: str | None = None
    policy: str | None = None
    expert_samples: int | None = None
    active_child: str | None = None
    retry_after: datetime | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    observed_generation: int | None = None
    ignored_fields: tuple[str, ...] = ()
    base_metrics: dict[str, float] = Field(default_factory=dict)
    best: BestPolicy | None = None
    iterations: tuple[IterationRecord, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def to_api(self) -> dict[str, Any]:
        """JSON-ready dict with the API's field names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_status(raw: dict[str, Any] | None) -> RLoopRunStatus:
    """Status as stored; unknown keys (an older or newer operator's) are ignored."""
    return RLoopRunStatus.model_validate(raw or {})

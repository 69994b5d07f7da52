"""The RLoopRun API: its spec and status, each field declared once, parsed once at the edge.

The CRD (crds/rlooprun.yaml and the chart's copy) is generated from these models by
hack/generate_api.py: types, defaults, bounds, descriptions, and beside them the CEL
rules (rloop_contract.schema). The sections the trainer reads come from the contract
(rloop_contract.sections); the rest is the operator's own. `rloop run`, which has no API
server in front of it, parses with the same models and gets the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from rloop_contract.schema import API_CONTEXT, Crd, Rule, SpecSection, immutable
from rloop_contract.sections import DapoSection, EvalSection, RewardSection, RftSection
from rloop_contract.tracking import TrackingSection

from rloop_operator.lifecycle import Disruption, Phase, Stage
from rloop_operator.pod_template import MOUNT_ON_STORAGE
from rloop_operator.spec_sections import (
    DataSpec,
    FilterSpec,
    ModelSpec,
    ResourcesSpec,
    SelectionSpec,
    StorageSpec,
)

GROUP = "rloop.io"
VERSION = "v1alpha1"
PLURAL = "rloopruns"
KIND = "RLoopRun"
SINGULAR = "rlooprun"
SHORT_NAMES = ("rlr",)
CATEGORIES = ("rloop",)


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and the fix."""


# The root of the CRD's schema; hack/generate_api.py writes it with the rules of the run's
# name (children.py: every name derived from it must fit).
DESCRIPTION = (
    "RLoopRun trains a reasoning LLM with RLoop (arXiv 2511.04285): each iteration explores "
    "with DAPO RL from the current policy while caching every rollout, keeps the correct "
    "rollouts of hard prompts, and fine-tunes the iteration's starting policy on them (RFT) to "
    "get the next policy."
)
PRINTER_COLUMNS = (
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
     "description": "Lifecycle phase of the run"},
    {"name": "Iteration", "type": "string", "jsonPath": ".status.progress",
     "description": "Completed iterations / total"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage",
     "description": "Stage of the current iteration"},
    {"name": "Expert", "type": "integer", "jsonPath": ".status.expertSamples",
     "description": "Expert samples kept by the last filter"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason",
     "description": "Why the run does not progress (e.g. Unschedulable, Queued, a Blocked "
                    "reason) or how it ended"},
    {"name": "Best", "type": "integer", "jsonPath": ".status.best.iteration",
     "description": "Iterations behind the best policy by spec.selection (0: the base policy)"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    # -o wide: how training goes, and the best held-out figure so far.
    {"name": "Score", "type": "number", "jsonPath": ".status.trainScore", "priority": 1,
     "description": "Mean score of the last DAPO step's rollouts (the training reward)"},
    {"name": "Best-Metric", "type": "string", "jsonPath": ".status.best.metric", "priority": 1,
     "description": "The spec.selection metric status.best maximises"},
    {"name": "Best-Value", "type": "number", "jsonPath": ".status.best.value", "priority": 1,
     "description": "The best policy's value of that metric"},
)  # fmt: skip


class RLoopRunSpec(SpecSection):
    """What to train, on what data, how, on which nodes and where to store it. Once the run
    exists, model, data, storage, mode, seed, resources.launcher, resources.nodes,
    resources.gpusPerNode and the zeroStage fields are immutable (the store's artifacts and
    checkpoints depend on them) and iterations may only grow; every other field may change at
    any time and applies to the children created after the edit. Succeeded and Failed are
    final except that growing iterations continues a Succeeded run, raising maxRetries retries
    a run that Failed on exhausted retries, and fixing a spec that failed on InvalidSpec starts
    the run."""

    crd_rules = (
        Rule(
            "!has(self.storage.volume) || !has(self.resources.podTemplate) || "
            "!has(self.resources.podTemplate.volumeMounts) || "
            "self.resources.podTemplate.volumeMounts.all(m, m.mountPath != "
            "self.storage.volume.mountPath)",
            MOUNT_ON_STORAGE,
            lambda s: s.storage.volume is None or s.resources.pod_template is None
            or all(m.mount_path != s.storage.volume.mount_path
                   for m in s.resources.pod_template.volume_mounts),
        ),
        Rule(
            "!has(self.selection) || !has(self.selection.validationSet) || "
            "(has(self.data.validation) && self.data.validation.exists(v, v.name == "
            "self.selection.validationSet))",
            "selection.validationSet is not in data.validation; name one of them or leave it "
            "out for the first",
        ),
    )  # fmt: skip

    model: Annotated[
        ModelSpec,
        immutable(
            "model is immutable once the run exists; create a new RLoopRun to train another model"
        ),
    ]
    data: Annotated[
        DataSpec,
        immutable("data is immutable once the run exists; create a new RLoopRun for other data"),
    ]
    storage: StorageSpec
    iterations: Annotated[
        int,
        Field(
            ge=1,
            le=99,
            description=(
                "Number of RLoop iterations (explore, filter, consolidate), or in mode vanilla of "
                "windows of dapo.steps steps of its one DAPO run. May grow, never shrink; growing "
                "it after the run Succeeded continues the run from its last policy (in mode "
                "vanilla, from the full state of its last window)."
            ),
        ),
        Rule("self >= oldSelf", "iterations may only grow while a run exists"),
    ] = 3
    mode: Annotated[
        Literal["rloop", "vanilla"],
        Field(
            description=(
                "rloop runs the loop; vanilla runs one DAPO run of iterations x dapo.steps steps "
                "on the same data, the paper's baseline at equal compute, cut into iterations "
                "windows of dapo.steps steps: each window resumes the full state of the last "
                "(weights, optimizer, RNG, data position, learning-rate schedule) and is evaluated "
                "like an RLoop iteration."
            )
        ),
        immutable("mode is immutable once the run exists"),
    ] = "rloop"
    seed: Annotated[
        int,
        Field(
            ge=0, description=("Base random seed; each phase derives its own from it. Immutable.")
        ),
        immutable("seed is immutable once the run exists; its phases derive their seeds from it"),
    ] = 0
    dapo: DapoSection = DapoSection()
    filter: FilterSpec = FilterSpec()
    rft: RftSection = RftSection()
    reward: RewardSection = RewardSection()
    eval: EvalSection = EvalSection()
    selection: SelectionSpec = SelectionSpec()
    tracking: TrackingSection = TrackingSection()
    resources: ResourcesSpec = ResourcesSpec()
    suspend: Annotated[
        bool,
        Field(
            description=(
                "Suspend the run. Running children are deleted; the store keeps everything; resume "
                "continues the same stage."
            )
        ),
    ] = False
    max_retries: Annotated[int, Field(ge=0, le=10, description=(
        "Retries of a failed phase (with exponential backoff) before the run fails. Raising it "
        "after the run Failed on exhausted retries retries the failed stage."))] = 2  # fmt: skip
    max_disruptions: Annotated[int, Field(ge=0, description=(
        "Disruptions of one stage of one iteration (a phase pod evicted or preempted, its node "
        "lost, its child preempted by Kueue, the phase hung past progressTimeout or "
        "collectiveTimeout) that do not count as failures; each one beyond it counts against "
        "maxRetries. Unset: none counts. A disrupted attempt resumes from the stage's latest "
        "checkpoint once it runs again."))] | None = None  # fmt: skip

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
    """Parse a spec dict in the API's spelling (camelCase); raises SpecError listing each bad
    field as spec.<path>."""
    try:
        return RLoopRunSpec.model_validate(
            raw, by_alias=True, by_name=False, context={API_CONTEXT: True}
        )
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


class StatusModel(BaseModel):
    """Status as stored; unknown keys (an older or newer operator's) are ignored."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


_TIME = Crd({"format": "date-time"})
_GENERATION = Crd({"format": "int64"})


class Condition(StatusModel):
    type: Annotated[str, Crd({"maxLength": 316})]
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Annotated[datetime, _TIME]
    reason: Annotated[str, Crd({"maxLength": 1024})]
    message: Annotated[str, Crd({"maxLength": 32768})]
    observed_generation: Annotated[int, Crd({"format": "int64", "minimum": 0})] | None = None


class DisruptionRecord(StatusModel):
    """One disruption of an attempt: not its failure, and retried without counting."""

    child: Annotated[str, Field(description="The attempt disrupted.")]
    kind: Annotated[Disruption, Field(description=(
        "Eviction, Preemption (by the scheduler), NodeLost, KueuePreemption, Hang."))]  # fmt: skip
    reason: Annotated[str, Field(description=(
        "As Kubernetes, Kueue or the trainer says it, e.g. EvictionByEvictionAPI, "
        "DeletionByPodGC, Preempted, Stalled."))]  # fmt: skip
    message: Annotated[str, Field(description="What happened and where.")]
    at: Annotated[datetime, _TIME]
    id: Annotated[str, Field(description=(
        "The disrupted pod's UID, the Kueue Workload's UID / the eviction's number, or the "
        "hung child's name @ its creation time."
    ))]  # fmt: skip


class IterationRecord(StatusModel):
    index: int
    started_at: Annotated[datetime, _TIME] | None = None
    finished_at: Annotated[datetime, _TIME] | None = None
    base_eval_job: (
        Annotated[
            str, Field(description=("The Job that evaluated the base policy (iteration 0 only)."))
        ]
        | None
    ) = None
    rl_job: (
        Annotated[str, Field(description=("The PyTorchJob or TrainJob of the DAPO phase."))] | None
    ) = None
    filter_job: Annotated[str, Field(description="The Job of the filter phase.")] | None = None
    rft_job: (
        Annotated[str, Field(description=("The PyTorchJob or TrainJob of the RFT phase."))] | None
    ) = None
    eval_job: Annotated[str, Field(description="The Job of the evaluation.")] | None = None
    failed_jobs: Annotated[
        tuple[str, ...],
        Field(
            description=(
                "Children of this iteration that failed, oldest first; each was retried or failed "
                "the run."
            )
        ),
    ] = ()
    disruptions: Annotated[
        tuple[DisruptionRecord, ...],
        Field(description="Disruptions of this iteration's attempts, oldest first."),
    ] = ()
    trajectories: (
        Annotated[int, Field(description=("Rollouts cached by the DAPO phase."))] | None
    ) = None
    hard_prompts: (
        Annotated[int, Field(description=("Prompts whose success rate was below the threshold."))]
        | None
    ) = None
    expert_samples: (
        Annotated[int, Field(description=("Correct rollouts of hard prompts kept for RFT."))] | None
    ) = None
    train_score: Annotated[float, Field(description=(
        "Mean score of the rollouts of the DAPO phase's last step (its training reward)."
    ))] | None = None  # fmt: skip
    policy: Annotated[str, Field(description=("The policy this iteration produced."))] | None = None
    metrics: Annotated[dict[str, float], Field(description=(
        "Evaluation metrics, e.g. aime24/avg@32."))] = Field(default_factory=dict)  # fmt: skip


class BestPolicy(StatusModel):
    """The evaluated policy with the highest spec.selection metric (the earliest of equals)."""

    iteration: Annotated[
        int, Field(description=("Iterations completed behind it; 0 is the base policy."))
    ]
    policy: Annotated[str, Field(description="Its location in the store.")]
    metric: Annotated[str, Field(description="The metric, e.g. aime24/avg@32.")]
    value: Annotated[float, Field(description="Its value of the metric.")]  # fmt: skip


class RLoopRunStatus(StatusModel):
    """Observed state, written by the operator."""

    # Everything the operator decides from lives here or in the children, never only in
    # memory.

    phase: Annotated[
        Phase, Field(description=("Lifecycle phase; Succeeded and Failed are terminal."))
    ] = Phase.PENDING
    stage: Annotated[
        Stage,
        Field(
            description=(
                "Stage of the current iteration; EvaluatingBase evaluates the base policy, first "
                "in iteration 0."
            )
        ),
    ] = Stage.NONE
    iteration: Annotated[int, Field(description="Completed iterations.")] = 0
    progress: (
        Annotated[str, Field(description=("Completed iterations / total, e.g. 1/3."))] | None
    ) = None
    policy: (
        Annotated[str, Field(description=("The policy the next phase starts from (theta_i)."))]
        | None
    ) = None
    expert_samples: (
        Annotated[int, Field(description=("Expert samples kept by the last completed filter."))]
        | None
    ) = None
    train_score: Annotated[float, Field(description=(
        "Mean score of the rollouts of the last step of the last finished DAPO phase."
    ))] | None = None  # fmt: skip
    active_child: (
        Annotated[str, Field(description=("Name of the child that runs the current stage."))] | None
    ) = None
    retry_after: (
        Annotated[datetime, _TIME, Field(description=("When the failed stage is retried."))] | None
    ) = None
    reason: (
        Annotated[str, Field(description=("Machine-readable reason of the current phase."))] | None
    ) = None
    message: (
        Annotated[str, Field(description=("What happened and, on failure, what to do."))] | None
    ) = None
    started_at: Annotated[datetime, _TIME] | None = None
    finished_at: Annotated[datetime, _TIME] | None = None
    observed_generation: (
        Annotated[
            int, _GENERATION, Field(description=("The spec generation this status reflects."))
        ]
        | None
    ) = None
    ignored_fields: Annotated[
        tuple[str, ...],
        Field(
            description=(
                "Spec fields that this operator version does not know (a newer CRD's) and ignores; "
                "upgrade the operator to use them."
            )
        ),
    ] = ()
    base_metrics: Annotated[
        dict[str, float],
        Field(
            description=(
                "Evaluation metrics of the base policy, before any RL step, e.g. aime24/avg@32."
            )
        ),
    ] = Field(default_factory=dict)
    best: (
        Annotated[
            BestPolicy,
            Field(
                description=(
                    "The evaluated policy with the highest spec.selection metric (the earliest of "
                    "equals)."
                )
            ),
        ]
        | None
    ) = None
    iterations: Annotated[
        tuple[IterationRecord, ...], Field(description=("One record per started iteration."))
    ] = ()
    disruptions: Annotated[dict[str, int], Field(description=(
        "Disruptions so far by stage, e.g. Exploring: 2 (each in iterations[].disruptions)."
    ))] = Field(default_factory=dict)  # fmt: skip
    conditions: Annotated[tuple[Condition, ...], Crd({
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})] = ()  # fmt: skip

    def to_api(self) -> dict[str, Any]:
        """JSON-ready dict with the API's field names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_status(raw: dict[str, Any] | None) -> RLoopRunStatus:
    """Status as stored; unknown keys (an older or newer operator's) are ignored."""
    return RLoopRunStatus.model_validate(raw or {})

"""Phase configs: the only contract between the operator and the trainer.

The operator renders one of these as JSON into the command of each child
(`rloop-trainer <phase> --config-json '{...}'`); `rloop run` and the tests do the
same with `--config FILE`. Each phase gets one frozen model, parsed once at the
edge (by field names, snake_case); unknown keys are an error that names the key. A
phase's settings are its section of the RLoopRun spec, declared once in the contract
(rloop_contract.sections); this module adds the URIs and what only the trainer knows.

All locations are URIs (`s3://bucket/key`, `file:///abs/path`, or for a starting
policy also `hf://org/name`): the operator decides the object-store layout, the
trainer only reads and writes where it is told.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rloop_contract.sections import (
    DapoSection,
    EngineName,
    EvalSection,
    FilterSection,
    RewardSection,
    RftSection,
    ValidationSet,
    field_of,
)
from rloop_contract.tracking import TrackingSection


class PhaseConfigError(ValueError):
    """A phase config that cannot be used; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRef(_Strict):
    """Which RLoopRun and iteration a phase belongs to (for logs and metrics only)."""

    namespace: str = "default"
    name: str = "local"
    uid: str = "local"
    iteration: int = Field(0, ge=0)
    rl_step: int = Field(
        0,
        ge=0,
        description="RL steps the run had taken when this phase began, which places the "
        "phase on the run's axis of RL steps: a DAPO step numbered s lies at "
        "rl_step + s - first_step (so a vanilla window has rl_step = window.first_step); "
        "filter, RFT and eval lie at rl_step",
    )


class PhaseTracking(TrackingSection):
    """spec.tracking, and what the trackers need besides it from the operator."""

    files_uri: str = Field(
        description="the run's tracker files: <run root>/tracking (TensorBoard event files "
        "under tensorboard/, offline W&B runs under wandb/)"
    )
    run_spec: dict[str, object] = Field(
        default_factory=dict,
        description="the RLoopRun's spec as applied, logged as the run's parameters",
    )
    selection_metric: str | None = Field(
        None,
        description="the metric status.best maximises, e.g. heldout/avg@8; the eval phase "
        "logs the best evaluation by it",
    )


class TrainerOptions(BaseModel):
    """How the trainer runs a training phase, beside the spec's settings: not in the API."""

    bf16: bool | None = Field(None, description="None: bf16 on GPU, fp32 on CPU")
    gradient_checkpointing: bool = False
    collective_timeout_seconds: int = Field(
        1800,
        ge=1,
        description=(
            "a collective (all-reduce, barrier, ...) that does not complete in this many "
            "seconds fails the phase, and so does a rank whose peer has been silent that "
            "long; the pods end, their GPUs are freed and the stage can resume from its "
            "checkpoint (spec.resources.collectiveTimeout)"
        ),
    )

    @property
    def collective_timeout(self) -> timedelta:
        return timedelta(seconds=self.collective_timeout_seconds)


class DapoWindow(_Strict):
    """This phase is one window of a longer DAPO run (vanilla mode): it takes the run's
    steps first_step+1 .. first_step+steps, resuming the full state (weights, optimizer,
    RNG, data position) the window before left, so that the windows together are one
    uninterrupted run. Step numbers, sampling seeds and the warm-up are the run's."""

    first_step: int = Field(ge=0, description="RL steps the run took before this window")
    run_steps: int = Field(ge=1, description="RL steps of the whole run (all its windows)")
    previous_uri: str | None = Field(
        None, description="the output_uri of the window before; None for the first window"
    )

    @model_validator(mode="after")
    def _previous_iff_not_first(self) -> DapoWindow:
        if (self.first_step > 0) != (self.previous_uri is not None):
            raise ValueError(
                f"window.previous_uri must be set exactly when window.first_step > 0 (got "
                f"first_step={self.first_step}, previous_uri={self.previous_uri!r}): a later "
                "window resumes the state of the one before"
            )
        return self


class DapoPhaseConfig(DapoSection, TrainerOptions):
    """Exploration: DAPO RL from `policy_uri` for `steps` steps (spec.dapo, spec.reward).

    Writes every rollout of every step, before filtering, to
    `trajectories_uri`/step-000001.parquet ...; the RL end point (HF format) to
    `rl_policy_uri`; and under `output_uri`:
      checkpoints/step-000050/ ...          resume state
      metrics.jsonl                         one line per step
      _SUCCESS                              written last
    """

    run: RunRef = RunRef()
    seed: int = 0
    reward: RewardSection = RewardSection()
    tracking: PhaseTracking | None = None
    policy_uri: str
    train_data_uri: str
    trajectories_uri: str
    rl_policy_uri: str
    output_uri: str
    window: DapoWindow | None = None

    @model_validator(mode="after")
    def _window_fits_the_run(self) -> DapoPhaseConfig:
        if self.window is not None and self.window.first_step + self.steps > self.window.run_steps:
            raise ValueError(
                f"window.first_step ({self.window.first_step}) + steps ({self.steps}) exceeds "
                f"window.run_steps ({self.window.run_steps}); a window lies inside its run"
            )
        return self

    @property
    def first_step(self) -> int:
        """RL steps of the run before this phase: 0 unless it is a later window."""
        return 0 if self.window is None else self.window.first_step

    @property
    def last_step(self) -> int:
        return self.first_step + self.steps

    @property
    def run_steps(self) -> int:
        """RL steps of the whole run, over which the learning-rate schedule runs."""
        return self.steps if self.window is None else self.window.run_steps

    def rl_step_of(self, step: int) -> int:
        """Where the run's step `step` lies on the run's axis of RL steps (RunRef.rl_step)."""
        return self.run.rl_step + step - self.first_step


class FilterPhaseConfig(FilterSection):
    """Keep the correct rollouts of hard prompts (success rate < hard_threshold).

    Reads every `*.parquet` under `trajectories_uri`; writes the expert set (a parquet
    file) to `expert_uri`, the report (JSON) to `report_uri`, and `_SUCCESS` under
    `output_uri` last.
    """

    run: RunRef = RunRef()
    seed: int = 0
    tracking: PhaseTracking | None = None
    trajectories_uri: str
    expert_uri: str
    report_uri: str
    output_uri: str


class RftPhaseConfig(RftSection, TrainerOptions):
    """Rejection-sampling fine-tuning of the iteration's STARTING policy (spec.rft).

    Reads `policy_uri` (theta_i) and `expert_uri` (the filter's data.parquet);
    writes the next policy (HF safetensors + tokenizer + config) to `output_uri`,
    checkpoints to `checkpoint_uri`, metrics.jsonl and _SUCCESS last.
    """

    run: RunRef = RunRef()
    seed: int = 0
    tracking: PhaseTracking | None = None
    policy_uri: str
    expert_uri: str
    output_uri: str
    checkpoint_uri: str
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clip (not in the API)")
    checkpoint_every: int = Field(200, ge=1, description="optimizer steps between checkpoints")


class EvaluatedPolicy(_Strict):
    """One evaluation of the run, as the operator lists it for the run-level analysis."""

    label: Annotated[str, Field(min_length=1, description="e.g. 'base', 'iter 2'")]
    iteration: int = Field(ge=0, description="iterations completed behind the policy; base: 0")
    rl_steps: int = Field(ge=0, description="RL steps the run had taken behind the policy")
    eval_uri: str = Field(description="that evaluation's output_uri (samples.parquet, report)")


class DapoMetricsSeries(_Strict):
    """One DAPO phase's metrics.jsonl, placed on the run's axis of RL steps."""

    metrics_uri: str
    first_step: int = Field(0, ge=0, description="RL steps the run had taken before the phase")


class RunAnalysisConfig(_Strict):
    """Inputs of the run-level analysis that the eval phase refreshes after its report.

    Writes under `output_uri`: analysis.json and PNG pictures (run_analysis.py).
    """

    output_uri: str
    evaluations: list[EvaluatedPolicy] = Field(
        min_length=1, description="every evaluation of the run so far, oldest first, this one last"
    )
    dapo_metrics: list[DapoMetricsSeries] = Field(default_factory=list)


class EvalPhaseConfig(EvalSection):
    """avg@n and unbiased pass@k of `policy_uri` on each validation set (spec.eval, with the
    prompt bound and rollout engine of spec.dapo and the grading of spec.reward).

    Writes the report (JSON) to `report_uri`, every sample to `output_uri`/samples.parquet
    and `_SUCCESS` under `output_uri` last; then, with `analysis`, refreshes the run-level
    analysis.
    """

    run: RunRef = RunRef()
    seed: int = 0
    tracking: PhaseTracking | None = None
    policy_uri: str
    report_uri: str
    output_uri: str
    validation: list[ValidationSet] = Field(min_length=1)
    max_prompt_tokens: int = field_of(DapoSection, "max_prompt_tokens")
    engine: EngineName = field_of(DapoSection, "engine")
    reward: RewardSection = RewardSection()
    analysis: RunAnalysisConfig | None = None

    @model_validator(mode="after")
    def _analysis_ends_with_this_evaluation(self) -> EvalPhaseConfig:
        if self.analysis is not None and self.analysis.evaluations[-1].eval_uri != self.output_uri:
            raise ValueError(
                f"analysis.evaluations ends with eval_uri "
                f"{self.analysis.evaluations[-1].eval_uri!r}, not this evaluation's output_uri "
                f"{self.output_uri!r}; list this evaluation last"
            )
        return self


PhaseConfig = DapoPhaseConfig | FilterPhaseConfig | RftPhaseConfig | EvalPhaseConfig

PHASE_CONFIGS: dict[str, type[PhaseConfig]] = {
    "dapo": DapoPhaseConfig,
    "filter": FilterPhaseConfig,
    "rft": RftPhaseConfig,
    "eval": EvalPhaseConfig,
}


def _describe(error: ValidationError, phase: str) -> str:
    lines = [f"invalid {phase} phase config:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            lines.append(
                f"  {key}: unknown key; remove it (allowed keys are the fields of "
                f"{PHASE_CONFIGS[phase].__name__})"
            )
        else:
            lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def parse_phase_config(phase: str, raw: str) -> PhaseConfig:
    """Parse the JSON text of a phase config; raises PhaseConfigError naming the key."""
    if phase not in PHASE_CONFIGS:
        raise PhaseConfigError(f"unknown phase {phase!r}; use one of {sorted(PHASE_CONFIGS)}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PhaseConfigError(f"{phase} phase config is not valid JSON: {exc}") from exc
    try:
        return PHASE_CONFIGS[phase].model_validate(data, by_alias=False, by_name=True)
    except ValidationError as exc:
        raise PhaseConfigError(_describe(exc, phase)) from exc


def load_phase_config(phase: str, path: Path) -> PhaseConfig:
    """Read and parse a phase config file."""
    try:
        raw = path.read_text()
    except OSError as exc:
        raise PhaseConfigError(f"cannot read phase config {path}: {exc.strerror}") from exc
    return parse_phase_config(phase, raw)

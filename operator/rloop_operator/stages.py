"""The table of stages: for each stage of an iteration, what runs it and what it leaves. Pure.

    stage           slug    trainer phase  launcher                  record       report
    EvaluatingBase  base    eval           batch/v1 Job              baseEvalJob  base-eval
    Exploring       rl      dapo           spec.resources.launcher   rlJob        -
    Filtering       filter  filter         batch/v1 Job              filterJob    expert
    Consolidating   rft     rft            spec.resources.launcher   rftJob       -
    Evaluating      eval    eval           batch/v1 Job              evalJob      eval

The slug names the stage in child names and in the rloop.io/stage label; the record is
the IterationRecord field that names the stage's current child. EvaluatingBase evaluates
theta_0 once, first in iteration 0, so that every report starts with the base policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rloop_operator.api import RLoopRunSpec, Stage
from rloop_operator.layout import RunLayout


class Report(StrEnum):
    """The report.json a finished stage leaves (and repeats in its termination message)."""

    EXPERT = "expert"  # the filter's: rollouts, hard prompts, kept expert samples
    EVAL = "eval"  # the evaluation's: avg@n and pass@k per validation set
    BASE_EVAL = "base-eval"  # the same of the base policy

    def uri(self, layout: RunLayout, iteration: int) -> str:
        if self is Report.EXPERT:
            return layout.expert_report(iteration)
        if self is Report.BASE_EVAL:
            return layout.base_eval_report()
        return layout.eval_report(iteration)


@dataclass(frozen=True)
class StageInfo:
    stage: Stage
    slug: str
    phase: str
    # True: torchrun on the spec's training launcher (PyTorchJob or TrainJob), on GPU
    # nodes; False: a single-pod batch/v1 Job.
    distributed: bool
    record_field: str
    report: Report | None


STAGES = (
    StageInfo(Stage.EXPLORING, "rl", "dapo", True, "rl_job", None),
    StageInfo(Stage.FILTERING, "filter", "filter", False, "filter_job", Report.EXPERT),
    StageInfo(Stage.CONSOLIDATING, "rft", "rft", True, "rft_job", None),
    StageInfo(Stage.EVALUATING, "eval", "eval", False, "eval_job", Report.EVAL),
    # Last in the table so that the other stages keep their seeds (phase_seed).
    StageInfo(Stage.EVALUATING_BASE, "base", "eval", False, "base_eval_job", Report.BASE_EVAL),
)
_BY_STAGE = {info.stage: info for info in STAGES}
_BY_SLUG = {info.slug: info for info in STAGES}
# phase_seed() offsets each stage's seed by its position in this mapping.
STAGE_SLUG = {info.stage: info.slug for info in STAGES}


def stage_info(stage: Stage) -> StageInfo:
    return _BY_STAGE[stage]


def stage_of_slug(slug: str) -> Stage | None:
    info = _BY_SLUG.get(slug)
    return None if info is None else info.stage


def stages_of(spec: RLoopRunSpec) -> tuple[Stage, ...]:
    """Every stage the children of a run run: those of its first iteration, which has all."""
    return iteration_stages(spec, 0)


def iteration_stages(spec: RLoopRunSpec, iteration: int) -> tuple[Stage, ...]:
    """The stages of one iteration of a run, in order: with validation sets, iteration 0
    evaluates the base policy first and every iteration evaluates the policy it made."""
    validated = bool(spec.data.validation)
    base = (Stage.EVALUATING_BASE,) if validated and iteration == 0 else ()
    evaluation = (Stage.EVALUATING,) if validated else ()
    if spec.mode == "vanilla":
        return (*base, Stage.EXPLORING, *evaluation)
    return (*base, Stage.EXPLORING, Stage.FILTERING, Stage.CONSOLIDATING, *evaluation)

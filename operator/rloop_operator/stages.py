"""The table of stages: for each stage of an iteration, what runs it and what it leaves. Pure.

    stage          slug    trainer phase  launcher                        record     report
    Exploring      rl      dapo           spec.resources.launcher         rlJob      -
    Filtering      filter  filter         batch/v1 Job                    filterJob  expert
    Consolidating  rft     rft            spec.resources.launcher         rftJob     -
    Evaluating     eval    eval           batch/v1 Job                    evalJob    eval

The slug names the stage in child names and in the rloop.io/stage label; the record is
the IterationRecord field that names the stage's current child.
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

    def uri(self, layout: RunLayout, iteration: int) -> str:
        if self is Report.EXPERT:
            return layout.expert_report(iteration)
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
    """The stages of each iteration of a run, in order."""
    evaluation = (Stage.EVALUATING,) if spec.data.validation else ()
    if spec.mode == "vanilla":
        return (Stage.EXPLORING, *evaluation)
    return (Stage.EXPLORING, Stage.FILTERING, Stage.CONSOLIDATING, *evaluation)

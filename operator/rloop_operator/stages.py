"""The table of stages: for each stage of an iteration, what runs it, where, what it is
handed and what it leaves. Pure.

    stage           slug    phase   launcher                 GPU node  config (phase_config)  report
    Exploring       rl      dapo    spec.resources.launcher  yes       dapo_config            dapo
    Filtering       filter  filter  batch/v1 Job             no        filter_config          expert
    Consolidating   rft     rft     spec.resources.launcher  yes       rft_config             -
    Evaluating      eval    eval    batch/v1 Job             yes       eval_config            eval
    EvaluatingBase  base    eval    batch/v1 Job             yes       base_eval_config       base

The slug names the stage in child names and in the rloop.io/stage label; the record is
the IterationRecord field that names the stage's current child. EvaluatingBase evaluates
theta_0 once, first in iteration 0, so that every report starts with the base policy. A
stage's seed is the run's seed offset by its row here (and by 1000 per iteration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rloop_operator import phase_config
from rloop_operator.api import RLoopRunSpec
from rloop_operator.launchers import BATCH_JOB, TRAINING_LAUNCHERS, Launcher, Prerequisite
from rloop_operator.layout import RunLayout
from rloop_operator.lifecycle import Stage
from rloop_operator.stage_reports import (
    BASE_EVAL_REPORT,
    DAPO_REPORT,
    EVAL_REPORT,
    EXPERT_REPORT,
    ReportKind,
)

ConfigBuilder = Callable[[RLoopRunSpec, RunLayout, int], phase_config.ConfigBody]


@dataclass(frozen=True)
class StageInfo:
    stage: Stage
    slug: str
    phase: str  # the trainer's phase command
    # True: torchrun on the spec's training launcher (PyTorchJob or TrainJob), on GPU
    # nodes; False: a single-pod batch/v1 Job.
    distributed: bool
    # Runs on the GPU nodes (their nodeSelector, tolerations, Guaranteed resources and
    # /dev/shm); a single-pod stage there gets at most one GPU.
    gpu_node: bool
    record_field: str
    config: ConfigBuilder
    report: ReportKind | None
    # Runs after the iteration's DAPO phase: it lies at the end of the iteration's RL steps
    # on the run's axis (trackers' x axis); the others at its start.
    after_rl: bool


STAGES = (
    StageInfo(
        Stage.EXPLORING, "rl", "dapo", True, True, "rl_job", phase_config.dapo_config,
        DAPO_REPORT, after_rl=False,
    ),
    StageInfo(
        Stage.FILTERING, "filter", "filter", False, False, "filter_job",
        phase_config.filter_config, EXPERT_REPORT, after_rl=True,
    ),
    StageInfo(
        Stage.CONSOLIDATING, "rft", "rft", True, True, "rft_job", phase_config.rft_config, None,
        after_rl=True,
    ),
    StageInfo(
        Stage.EVALUATING, "eval", "eval", False, True, "eval_job", phase_config.eval_config,
        EVAL_REPORT, after_rl=True,
    ),
    # Last in the table so that the other stages keep their seeds (phase_seed).
    StageInfo(
        Stage.EVALUATING_BASE, "base", "eval", False, True, "base_eval_job",
        phase_config.base_eval_config, BASE_EVAL_REPORT, after_rl=False,
    ),
)  # fmt: skip
_BY_STAGE = {info.stage: info for info in STAGES}
_BY_SLUG = {info.slug: info for info in STAGES}


def stage_info(stage: Stage) -> StageInfo:
    return _BY_STAGE[stage]


def stage_of_slug(slug: str) -> Stage | None:
    info = _BY_SLUG.get(slug)
    return None if info is None else info.stage


def phase_seed(spec: RLoopRunSpec, iteration: int, stage: Stage) -> int:
    if spec.mode == "vanilla" and stage is Stage.EXPLORING:
        iteration = 0  # the windows of one DAPO run share its seed
    return spec.seed + 1000 * iteration + STAGES.index(stage_info(stage))


def rl_steps_before(spec: RLoopRunSpec, iteration: int, stage: Stage) -> int:
    """The run's RL steps before the stage's phase began: where it lies on the run's axis of
    RL steps (a vanilla window's first step; 0 for the base policy's evaluation)."""
    return spec.dapo.steps * (iteration + stage_info(stage).after_rl)


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


def launcher_for(spec: RLoopRunSpec, stage: Stage) -> Launcher:
    """The launcher that runs `stage` of a run with this spec."""
    if stage_info(stage).distributed:
        return TRAINING_LAUNCHERS[spec.resources.launcher]
    return BATCH_JOB


def launchers_able_to_run(info: StageInfo) -> tuple[Launcher, ...]:
    """Every launcher some spec could choose for the stage."""
    return tuple(TRAINING_LAUNCHERS.values()) if info.distributed else (BATCH_JOB,)


def prerequisites(spec: RLoopRunSpec, stages: tuple[Stage, ...]) -> tuple[Prerequisite, ...]:
    """The objects the children of these stages need, each once."""
    launchers = dict.fromkeys(launcher_for(spec, stage) for stage in stages)
    runtime = spec.resources.trainjob_runtime
    return tuple(p for launcher in launchers for p in launcher.prerequisites(runtime))

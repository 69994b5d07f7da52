"""The registry of launchers: one per kind of child object. Pure.

A stage runs on the training launcher that spec.resources.launcher names (DAPO and RFT,
distributed with torchrun) or on the batch Job launcher (filter and eval). Adding a
launcher is one entry here plus its line in the chart's RBAC list (_helpers.tpl).
"""

from __future__ import annotations

from rloop_operator.api import Phase, RLoopRunSpec, Stage
from rloop_operator.launchers.base import (
    ApiResource,
    ChildStatus,
    Launcher,
    LaunchRequest,
    PhasePod,
    Prerequisite,
)
from rloop_operator.launchers.batchjob import BatchJobLauncher
from rloop_operator.launchers.pytorchjob import PyTorchJobLauncher
from rloop_operator.launchers.trainjob import TrainJobLauncher
from rloop_operator.stages import StageInfo, stage_info

BATCH_JOB = BatchJobLauncher()
# Keyed by the values of spec.resources.launcher.
TRAINING_LAUNCHERS: dict[str, Launcher] = {
    "pytorchjob": PyTorchJobLauncher(),
    "trainjob": TrainJobLauncher(),
}
LAUNCHERS: tuple[Launcher, ...] = (*TRAINING_LAUNCHERS.values(), BATCH_JOB)
_BY_KIND = {launcher.kind: launcher for launcher in LAUNCHERS}

__all__ = [
    "BATCH_JOB",
    "LAUNCHERS",
    "TRAINING_LAUNCHERS",
    "ApiResource",
    "ChildStatus",
    "LaunchRequest",
    "Launcher",
    "Phase",
    "PhasePod",
    "Prerequisite",
    "launcher_for",
    "launcher_of_kind",
    "launchers_able_to_run",
    "prerequisites",
]


def launcher_of_kind(kind: str) -> Launcher | None:
    return _BY_KIND.get(kind)


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
    return tuple(p for launcher in launchers for p in launcher.prerequisites(spec))

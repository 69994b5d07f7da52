"""The registry of launchers: one per kind of child object, and the only place that names
one. Pure.

A stage runs on the training launcher that spec.resources.launcher names (DAPO and RFT,
distributed with torchrun) or on the batch Job launcher (filter and eval): stages.py. The
values of spec.resources.launcher, the CRD's enum of them and its bound on run names, and
the chart's RBAC rules for the children are derived from this table (hack/generate_api.py
writes the generated files; a unit test fails when they are stale). Adding a launcher is
its module and one entry here.
"""

from __future__ import annotations

from rloop_operator.launchers.base import (
    ApiResource,
    ChildStatus,
    Launcher,
    LaunchRequest,
    PhasePod,
    Prerequisite,
    RuntimeRefSpec,
)
from rloop_operator.launchers.batchjob import BatchJobLauncher
from rloop_operator.launchers.pytorchjob import PyTorchJobLauncher
from rloop_operator.launchers.trainjob import TrainJobLauncher

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
    "PhasePod",
    "Prerequisite",
    "RuntimeRefSpec",
    "launcher_of_kind",
]


def launcher_of_kind(kind: str) -> Launcher | None:
    return _BY_KIND.get(kind)

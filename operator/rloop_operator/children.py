"""Children of a run: their deterministic names, labels, and what their status says. Pure.

A child is named `<run>-i<NN>-<slug>[-r<retry>]` and is one of the registered launchers'
kinds. Kubeflow's webhooks want every child name to be a DNS-1035 label, and the names of
the pods, Services and Jobs derived from it must stay within 63 characters too, so the
run's name is bounded: MAX_RUN_NAME is the longest for which every stage's last retry of
the last iteration, on any launcher, still fits. The CRD refuses longer names and names
that are not DNS-1035 labels at apply time, with the same messages as run_name_problem().
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rloop_operator.launchers import LAUNCHERS, launcher_of_kind
from rloop_operator.launchers.base import parse_time
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.stages import STAGES, launchers_able_to_run, stage_info, stage_of_slug

LABEL_RUN = "rloop.io/run"
LABEL_ITERATION = "rloop.io/iteration"
LABEL_STAGE = "rloop.io/stage"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_RUN_NAME = "rloop.io/run-name"

MAX_NAME = 63  # a DNS-1035 label, and a label value
MAX_ITERATION_INDEX = 98  # spec.iterations <= 99
MAX_RETRY = 10  # spec.maxRetries <= 10
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def child_name(run_name: str, iteration: int, stage: Stage, retry: int) -> str:
    return f"{run_name}-i{iteration:02d}-{stage_info(stage).slug}" + (f"-r{retry}" if retry else "")


def _longest_run_name() -> int:
    return min(
        MAX_NAME
        - len(launcher.longest_derived_suffix)
        - len(child_name("", MAX_ITERATION_INDEX, info.stage, MAX_RETRY))
        for info in STAGES
        for launcher in launchers_able_to_run(info)
    )


MAX_RUN_NAME = _longest_run_name()
_MAX_DERIVED = max(len(launcher.longest_derived_suffix) for launcher in LAUNCHERS)
RUN_NAME_NOT_DNS_1035 = (
    "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting "
    "with a letter and ending with a letter or digit): Kubeflow refuses child names with "
    "dots; e.g. qwen2-5-math-7b instead of qwen2.5-math-7b"
)
RUN_NAME_TOO_LONG = (
    f"metadata.name must be at most {MAX_RUN_NAME} characters: the children of a run are "
    f"named <run>-i<NN>-<stage>[-r<retry>] and the names of their pods add up to "
    f"{_MAX_DERIVED} more characters, all within {MAX_NAME}; choose a shorter name"
)


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run, or None; the CRD's root rules say the same."""
    if not re.match(DNS_1035_LABEL, name):
        return RUN_NAME_NOT_DNS_1035
    if len(name) > MAX_RUN_NAME:
        return RUN_NAME_TOO_LONG
    return None


@dataclass(frozen=True)
class Child:
    """What the operator needs to know of one child object."""

    name: str
    kind: str
    iteration: int
    stage: Stage
    phase: Phase
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None
    created_at: datetime | None = None
    # When Kueue admitted it (its Suspended condition turned False): queued time is not
    # start time (attempts.watch_start).
    admitted_at: datetime | None = None
    deleting: bool = False
    # The trainer said its failure will recur (trainer_failures.TrainerFailure.permanent); then
    # `reason` and `message` are the trainer's own, and the run fails without retries.
    permanent: bool = False


def _admitted_at(status: Mapping[str, Any]) -> datetime | None:
    """Every launcher's controller sets Suspended False when the child is resumed."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Suspended" and condition.get("status") == "False":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def observe_child(obj: Mapping[str, Any]) -> Child | None:
    """Read a child of any registered kind; None if it is not one of ours."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    launcher = launcher_of_kind(obj.get("kind", ""))
    try:
        iteration = int(labels[LABEL_ITERATION])
        stage = stage_of_slug(labels[LABEL_STAGE])
    except (KeyError, ValueError):
        return None
    if launcher is None or stage is None:
        return None
    status = launcher.status(obj.get("status") or {})
    created = metadata.get("creationTimestamp")
    return Child(
        name=metadata["name"],
        kind=launcher.kind,
        iteration=iteration,
        stage=stage,
        phase=status.phase,
        reason=status.reason,
        message=status.message,
        finished_at=status.finished_at,
        created_at=parse_time(created),
        admitted_at=_admitted_at(obj.get("status") or {}),
        deleting=bool(metadata.get("deletionTimestamp")),
    )

"""A failed child in its trainer's own words, from its pods' termination messages. Pure.

The trainer leaves `{"error", "reason", "permanent"}` in the termination message of a
phase it stops on an error it recognises (rloop_trainer.termination). A permanent one
(bad input or config) would fail every retry the same way, so the run fails at once
with the trainer's line; anything else (a crash, an OOM kill, an eviction, a lost
node) leaves no such message and is retried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rloop_operator.children import Child
from rloop_operator.lifecycle import Phase
from rloop_operator.pods import Pods, termination_messages


@dataclass(frozen=True)
class TrainerFailure:
    """Why a phase's trainer stopped, in its own words."""

    message: str  # one line, e.g. "rloop-trainer dapo: s3://b/train.parquet does not exist; ..."
    reason: str  # e.g. InvalidInput, InvalidConfig, StoreUnavailable, Superseded
    permanent: bool  # the same child would fail the same way again: do not retry


def _parse_failure(message: str) -> TrainerFailure | None:
    try:
        failure = json.loads(message)
    except ValueError:
        return None  # e.g. the tail of a crash's traceback
    if not isinstance(failure, dict) or not isinstance(failure.get("error"), str):
        return None  # e.g. a report, or a message cut by the kubelet
    return TrainerFailure(
        message=failure["error"],
        reason=str(failure.get("reason") or "TrainerError"),
        permanent=failure.get("permanent") is True,
    )


def failure_from_messages(messages: Sequence[str]) -> TrainerFailure | None:
    """The trainer's failure among a failed child's termination messages (one per pod or
    container): a permanent one if any pod says so, since every retry would hit it; else
    the first; None when no message is a failure (a crash, an OOM kill, a lost node)."""
    failures = [f for f in map(_parse_failure, messages) if f is not None]
    return next((f for f in failures if f.permanent), failures[0] if failures else None)


def with_trainer_failure(child: Child, pods: Pods) -> Child:
    """`child`, if it failed and one of its pods says why, with the trainer's reason,
    message and verdict on retrying; else unchanged."""
    if child.phase is not Phase.FAILED:
        return child
    failure = _failure(child, pods)
    return child if failure is None else _failed(child, failure)


def failed_permanently(child: Child, pods: Pods) -> Child | None:
    """An unfinished child one of whose pods the trainer stopped on a permanent error, as
    failed in the trainer's words; else None. For launchers whose controller retries a
    failed pod in place (a TrainJob's Job: six times by default, each a pod start and a
    model load on every node) before the child itself fails."""
    if child.phase.is_terminal:
        return None
    failure = _failure(child, pods)
    if failure is None or not failure.permanent:
        return None
    return _failed(child, failure)


def _failure(child: Child, pods: Pods) -> TrainerFailure | None:
    return failure_from_messages(termination_messages(pods.get(child.name, ()), succeeded=False))


def _failed(child: Child, failure: TrainerFailure) -> Child:
    return replace(
        child,
        phase=Phase.FAILED,
        reason=failure.reason,
        message=failure.message,
        permanent=failure.permanent,
    )

"""A failed child in its trainer's own words, from its pods' termination messages. Pure.

The trainer leaves `{"error", "reason", "permanent"}` in the termination message of a
phase it stops on an error it recognises (rloop_trainer.termination). A permanent one
(bad input or config) would fail every retry the same way, so the run fails at once
with the trainer's line; anything else (a crash, an OOM kill, an eviction, a lost
node) leaves no such message and is retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from rloop_operator.children import Child
from rloop_operator.launchers import ChildPhase
from rloop_operator.pods import PodState, termination_messages
from rloop_operator.reports import failure_from_messages


def with_trainer_failure(child: Child, pods: Mapping[str, Sequence[PodState]]) -> Child:
    """`child`, if it failed and one of its pods says why, with the trainer's reason,
    message and verdict on retrying; else unchanged."""
    if child.phase is not ChildPhase.FAILED or child.name not in pods:
        return child
    failure = failure_from_messages(termination_messages(pods[child.name], succeeded=False))
    if failure is None:
        return child
    return replace(
        child, reason=failure.reason, message=failure.message, permanent=failure.permanent
    )

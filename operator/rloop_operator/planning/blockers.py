"""Why a run cannot take its next step, said precisely, and when to try again. Pure.

A blocked run waits without failing: each cause is something a person can fix (install
a CRD, create an object, fix the spec, grant a permission, raise a quota), and the run
goes on by itself once it is fixed. The Blocked condition carries the blocker's reason
(e.g. PersistentVolumeClaimNotFound, CreateForbidden, InvalidSpec) and message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from rloop_operator.api import Condition, RLoopRunSpec
from rloop_operator.launchers import Prerequisite
from rloop_operator.planning.inputs import Refusal
from rloop_operator.stages import launcher_for, prerequisites, stages_of


@dataclass(frozen=True)
class Blocker:
    reason: str  # the Blocked condition's reason, CamelCase
    message: str


# Blocked reasons of refused creates start with this; a retry waits for their backoff.
REFUSED = "Create"


def missing_object(
    spec: RLoopRunSpec,
    namespace: str,
    unserved_kinds: Collection[str],
    missing_prerequisites: Collection[Prerequisite],
    missing_claim: str | None,
) -> Blocker | None:
    """An object the run needs that does not exist (a CRD, a runtime, a claim)."""
    stages = stages_of(spec)
    for launcher in dict.fromkeys(launcher_for(spec, stage) for stage in stages):
        if launcher.kind in unserved_kinds:
            return Blocker(
                "LauncherNotInstalled",
                f"the cluster does not serve {launcher.kind} "
                f"({launcher.resource.api_version}), which runs stages of this run; "
                f"{launcher.install_hint}",
            )
    for missing in prerequisites(spec, stages):
        if missing in missing_prerequisites:
            where = f" in namespace {namespace}" if missing.resource.namespaced else ""
            return Blocker(
                f"{missing.resource.kind}NotFound",
                f"{missing.resource.kind} {missing.name!r} named by {missing.named_by} does not "
                f"exist{where}; {missing.hint}",
            )
    if missing_claim is not None:
        return Blocker(
            "PersistentVolumeClaimNotFound",
            f"PersistentVolumeClaim {missing_claim!r} named by spec.storage.volume.claimName "
            f"does not exist in namespace {namespace}; create it (ReadWriteMany: every phase "
            "pod mounts it)",
        )
    return None


def refused_create(kind: str, name: str, refusal: Refusal) -> Blocker:
    """The message stays the same while the API's answer does (one event, not one per
    retry); status.retryAfter says when the next attempt is."""
    return Blocker(
        f"{REFUSED}{refusal.reason or refusal.code}",
        f"the API server refused to create {kind} {name} ({refusal.code} {refusal.reason}): "
        f"{refusal.message}; the operator retries with backoff (status.retryAfter)",
    )


def create_retry_delay(
    previous: Condition | None, now: datetime, base_seconds: float, cap_seconds: float
) -> float:
    """Seconds until a refused create is tried again: as long as the refusals have lasted
    (so the waits double), at least `base_seconds`, at most `cap_seconds`. The first
    refusal's time is the Blocked condition's lastTransitionTime: no counter is kept."""
    refused_since = now
    if previous is not None and previous.status == "True" and previous.reason.startswith(REFUSED):
        refused_since = previous.last_transition_time
    elapsed = (now - refused_since).total_seconds()
    return min(max(elapsed, base_seconds), cap_seconds)


def spec_unusable(problem: str, running_child: str | None) -> Blocker:
    """A spec edit the operator cannot act on: the run holds, nothing is torn down."""
    if running_child is not None:
        holding = f"{running_child} keeps running; no new child starts until the spec is fixed"
    else:
        holding = "no child starts until the spec is fixed"
    return Blocker("InvalidSpec", f"{problem}; {holding}")

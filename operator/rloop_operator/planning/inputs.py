"""What plan() decides from: the run as read, everything observed about it, and settings.

The bottom of the planning package: every planning module and every caller of plan()
imports these types from here, and this module imports nothing of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rloop_operator.api import RLoopRunSpec, RLoopRunStatus, SpecError
from rloop_operator.children import Child
from rloop_operator.kueue_workloads import WorkloadEvictions
from rloop_operator.launchers import Prerequisite
from rloop_operator.layout import RunLayout, run_layout
from rloop_operator.pods import Pods
from rloop_operator.stage_reports import StageReport


@dataclass(frozen=True)
class RunView:
    """The run as read from the API server (or a local YAML file)."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: RLoopRunSpec | SpecError
    status: RLoopRunStatus
    # Spec fields this operator does not know (a newer CRD's), left out of `spec`.
    ignored_fields: tuple[str, ...] = ()
    # metadata.deletionTimestamp is set (foreground deletion keeps the run until its
    # children are gone): it never gets a new child.
    deleting: bool = False

    @property
    def layout(self) -> RunLayout:
        assert isinstance(self.spec, RLoopRunSpec)
        return run_layout(self.spec.storage.uri, self.namespace, self.name, self.uid)


@dataclass(frozen=True)
class Refusal:
    """The API server's answer to a child it would not create."""

    code: int  # HTTP status, e.g. 403
    reason: str  # the Status reason, e.g. Forbidden, Invalid
    message: str  # the Status message, which names the webhook, quota or permission


@dataclass(frozen=True)
class Observed:
    children: tuple[Child, ...] = ()
    reports: Mapping[str, StageReport] = field(default_factory=dict)
    missing_claim: str | None = None
    # Launchers' prerequisites (e.g. a TrainJob runtime) that do not exist.
    missing_prerequisites: tuple[Prerequisite, ...] = ()
    # Kinds of children the cluster does not serve (their CRD is not installed).
    unserved_kinds: frozenset[str] = frozenset()
    # Children the API server refused to create in this reconcile, by name.
    refused: Mapping[str, Refusal] = field(default_factory=dict)
    # The pods of children (existing or not yet created), by child name, for the names
    # attempts.pods_to_read asks for; none when the phases are not pods (`rloop run`).
    pods: Pods = field(default_factory=dict)
    # What Kueue says of the children it evicted at least once, by child name.
    kueue_evictions: Mapping[str, WorkloadEvictions] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanSettings:
    backoff_base_seconds: float = 10.0
    backoff_cap_seconds: float = 600.0
    blocked_requeue_seconds: float = 30.0

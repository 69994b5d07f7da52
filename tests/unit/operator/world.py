"""A few lines of bookkeeping that apply plan()'s actions to an in-memory set of
children, so plan tests read as stories. plan() itself stays the code under test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rloop_operator.api import RLoopRunSpec, RLoopRunStatus, SpecError
from rloop_operator.children import Child
from rloop_operator.kueue_workloads import WorkloadEvictions
from rloop_operator.launchers import Prerequisite
from rloop_operator.lifecycle import Phase
from rloop_operator.planning.actions import CreateChild, DeleteChild, EmitEvent, Plan, ReadReport
from rloop_operator.planning.inputs import Observed, PlanSettings, Refusal, RunView
from rloop_operator.planning.plan import plan
from rloop_operator.planning.plan_loop import plan_until_settled
from rloop_operator.pods import PodState
from rloop_operator.stage_reports import StageReport
from rloop_operator.stages import launcher_for
from rloop_operator.unknown_fields import parse_cluster_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAPO_REPORT = StageReport(train_score=0.375)
FILTER_REPORT = StageReport(trajectories=640, hard_prompts=12, expert_samples=30)
EVAL_REPORT = StageReport(metrics={"heldout/avg@8": 0.25, "heldout/pass@8": 0.5})
# What each kind of report says unless a test sets a child's own (World.reports).
REPORTS = {
    "dapo": DAPO_REPORT,
    "expert": FILTER_REPORT,
    "eval": EVAL_REPORT,
    "base-eval": EVAL_REPORT,
}


def spec_dict(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"base": "s3://bucket/models/base"},
        "data": {"train": "s3://bucket/data/train.parquet"},
        "storage": {"uri": "s3://bucket/rloop", "credentialsSecret": "s3-creds"},
        "iterations": 2,
        "dapo": {"steps": 10},
    }
    spec.update(overrides)
    return spec


class World:
    def __init__(self, name: str = "demo", **overrides: Any) -> None:
        self.name = name
        self.spec = spec_dict(**overrides)
        self.status = RLoopRunStatus()
        self.children: dict[str, Child] = {}
        self.now = T0
        self.missing_claim: str | None = None
        self.missing_prerequisites: tuple[Prerequisite, ...] = ()
        self.unserved_kinds: frozenset[str] = frozenset()
        self.deleting = False
        # Children the API server refuses to create, as it answers.
        self.refusing: dict[str, Refusal] = {}
        self.create_attempts: list[tuple[datetime, str]] = []
        self.reports: dict[str, StageReport] = {}
        # The pods of children, by child name, as the reconciler reads them.
        self.pods: dict[str, tuple[PodState, ...]] = {}
        # What Kueue's Workloads say of the children it evicted, by child name.
        self.kueue_evictions: dict[str, WorkloadEvictions] = {}
        self.events: list[EmitEvent] = []
        self.settings = PlanSettings(backoff_base_seconds=10, backoff_cap_seconds=60)

    def view(self) -> RunView:
        """The run as the reconciler reads it from the API server."""
        spec: RLoopRunSpec | SpecError
        ignored: tuple[str, ...] = ()
        try:
            spec, ignored = parse_cluster_spec(self.spec)
        except SpecError as error:
            spec = error
        return RunView(
            self.name, "ns", "uid-1", 1, spec, self.status, ignored, deleting=self.deleting
        )

    def observed(self, reports: Mapping[str, StageReport] | None = None) -> Observed:
        return Observed(
            children=tuple(self.children.values()),
            reports=dict(reports or {}),
            missing_claim=self.missing_claim,
            missing_prerequisites=self.missing_prerequisites,
            unserved_kinds=self.unserved_kinds,
            pods=dict(self.pods),
            kueue_evictions=dict(self.kueue_evictions),
        )

    def plan_once(self, reports: Mapping[str, StageReport] | None = None) -> Plan:
        return plan(self.view(), self.observed(reports), self.now, self.settings)

    def read_report(self, read: ReadReport) -> StageReport:
        return self.reports.get(read.child, REPORTS[read.report.name])

    def create(self, action: CreateChild) -> Refusal | None:
        """The API server's answer to a create; the child itself is added by step()."""
        self.create_attempts.append((self.now, action.name))
        return self.refusing.get(action.name)

    def step(self) -> Plan:
        """Plan as the reconciler does (reports read), then apply the actions."""
        result = plan_until_settled(
            self.view(),
            self.observed(),
            self.now,
            self.settings,
            self.read_report,
            self.create,
        )
        for action in result.actions:
            if isinstance(action, CreateChild) and action.name not in self.children:
                self.children[action.name] = Child(
                    action.name,
                    launcher_for(parse_cluster_spec(self.spec)[0], action.stage).kind,
                    action.iteration,
                    action.stage,
                    Phase.PENDING,
                    created_at=self.now,
                )
            elif isinstance(action, DeleteChild):
                self.children[action.name] = replace(self.children[action.name], deleting=True)
            elif isinstance(action, EmitEvent):
                self.events.append(action)
        self.status = result.status
        return result

    def finish(self, name: str, ok: bool = True, message: str = "") -> None:
        phase = Phase.SUCCEEDED if ok else Phase.FAILED
        self.children[name] = replace(
            self.children[name],
            phase=phase,
            finished_at=self.now,
            reason="" if ok else "BackoffLimitExceeded",
            message=message,
        )

    def gone(self, name: str) -> None:
        """The child's deletion completed, and its pods with it."""
        del self.children[name]
        self.pods.pop(name, None)

    def active(self) -> str:
        assert self.status.active_child is not None, self.status
        return self.status.active_child

    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def run_to_end(self, limit: int = 50) -> list[str]:
        """Succeed every child as soon as it exists; returns children in creation order."""
        self.step()
        for _ in range(limit):
            if self.status.phase.is_terminal:
                break
            self.finish(self.active())
            self.advance_clock(60)
            self.step()
        return list(self.children)

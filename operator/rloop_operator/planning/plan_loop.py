"""Plan, carry out what the plan must learn from, plan again: written once.

plan() is pure, so what it cannot know it asks for. A finished filter or eval child's
report is a ReadReport action; a child it decides to create may be refused by the API
server (admission, quota, RBAC, a CRD that is gone). Whoever drives plan() (the
operator's reconciler, `rloop run`, the tests' world) supplies `read`, which fetches one
report, and `create`, which creates one child and returns the API server's refusal, if
any. plan_until_settled() repeats plan() with those answers until it learns nothing new, so one
reconcile moves from a succeeded filter to the next stage's child, and a refused child
ends up as a Blocked condition instead of a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from rloop_operator.api import RLoopRunSpec
from rloop_operator.planning.actions import CreateChild, Plan, ReadReport
from rloop_operator.planning.inputs import Observed, PlanSettings, Refusal, RunView
from rloop_operator.planning.plan import plan
from rloop_operator.stage_reports import StageReport
from rloop_operator.stages import launcher_for

ReadReportFn = Callable[[ReadReport], StageReport]
# Creates the child; None when it exists now, else the API server's refusal.
CreateChildFn = Callable[[CreateChild], Refusal | None]
NOT_FOUND = 404


def plan_until_settled(
    run: RunView,
    observed: Observed,
    now: datetime,
    settings: PlanSettings,
    read: ReadReportFn,
    create: CreateChildFn | None = None,
) -> Plan:
    """The plan once every report it asks for is read and, with `create`, every child it
    asks for is created or refused. Without `create` the plan's CreateChild actions are
    left to the caller (`rloop run` runs them after showing the plan's events)."""
    reports = dict(observed.reports)
    attempted: set[str] = set()
    while True:
        result = plan(run, replace(observed, reports=reports), now, settings)
        # An answered read or an attempted create is never repeated, so this ends.
        reads = [a for a in result.actions if isinstance(a, ReadReport) and a.child not in reports]
        if reads:
            for read_action in reads:
                reports[read_action.child] = read(read_action)
            continue
        if create is None:
            return result
        creates = [
            a for a in result.actions if isinstance(a, CreateChild) and a.name not in attempted
        ]
        refused = {}
        for create_action in creates:
            attempted.add(create_action.name)
            refusal = create(create_action)
            if refusal is not None:
                refused[create_action] = refusal
        if not refused:
            return result
        observed = _learn(run, observed, refused)


def _learn(run: RunView, observed: Observed, refused: dict[CreateChild, Refusal]) -> Observed:
    """A 404 means the child's kind is not served (its CRD is gone); any other refusal
    is the run's to show."""
    assert isinstance(run.spec, RLoopRunSpec)  # plan() creates nothing otherwise
    spec = run.spec
    unserved = {
        launcher_for(spec, action.stage).kind
        for action, refusal in refused.items()
        if refusal.code == NOT_FOUND
    }
    return replace(
        observed,
        refused={
            **observed.refused,
            **{a.name: r for a, r in refused.items() if r.code != NOT_FOUND},
        },
        unserved_kinds=observed.unserved_kinds | unserved,
    )

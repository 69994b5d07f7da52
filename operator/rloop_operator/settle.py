"""Plan, answer the report reads the plan asks for, plan again: written once.

plan() is pure, so when a finished filter or eval child's report is needed it asks for
it (a ReadReport action) instead of reading it. Whoever drives plan() (the operator's
reconciler, `rloop run`, the tests' world) supplies a `read` that fetches one report;
settle() repeats plan() until it asks for nothing new, so one reconcile moves from a
succeeded filter to the next stage's child.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from rloop_operator.plan import (
    Observed,
    Plan,
    PlanSettings,
    ReadReport,
    RunView,
    StageReport,
    plan,
)

ReadReportFn = Callable[[ReadReport], StageReport]


def settle(
    run: RunView,
    observed: Observed,
    now: datetime,
    settings: PlanSettings,
    read: ReadReportFn,
) -> Plan:
    """The plan once every report it asks for has been read."""
    reports = dict(observed.reports)
    while True:
        result = plan(run, replace(observed, reports=reports), now, settings)
        # A report already answered is never read twice, so this ends even if plan()
        # kept asking for one (it does not: an answered read is consumed).
        reads = [a for a in result.actions if isinstance(a, ReadReport) and a.child not in reports]
        if not reads:
            return result
        for read_action in reads:
            reports[read_action.child] = read(read_action)

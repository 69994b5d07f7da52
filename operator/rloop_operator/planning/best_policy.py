"""The base policy's evaluation and the run's best policy (status.best). Pure.

The paper selects its checkpoint on a validation set; spec.selection names the set and the
metric (default: the first set's avg@n). The candidates are the base policy theta_0
(iteration 0, evaluated before any RL step) and the policy of each evaluated iteration;
the highest value wins, the earliest among equals, so a run whose RL never beat its
starting point names the base policy.
"""

from __future__ import annotations

from rloop_operator.api import BestPolicy, RLoopRunSpec, RLoopRunStatus
from rloop_operator.layout import RunLayout
from rloop_operator.planning.status_draft import StatusDraft
from rloop_operator.policy_uris import produced_policy
from rloop_operator.stage_reports import StageReport


def best_policy(spec: RLoopRunSpec, status: RLoopRunStatus, layout: RunLayout) -> BestPolicy | None:
    """The evaluated policy with the highest selection metric; None before any has it."""
    metric = spec.selection_metric
    if metric is None:
        return None
    evaluated = [(0, spec.model.base, status.base_metrics)] + [
        (record.index + 1, produced_policy(spec, layout, record.index), record.metrics)
        for record in status.iterations
    ]
    scored = [(iteration, policy, m[metric]) for iteration, policy, m in evaluated if metric in m]
    if not scored:
        return None
    iteration, policy, value = max(scored, key=lambda candidate: candidate[2])
    return BestPolicy(iteration=iteration, policy=policy, metric=metric, value=value)


def note_best(draft: StatusDraft, spec: RLoopRunSpec) -> None:
    """Keep status.best up to date, with an event when it changes."""
    best = best_policy(spec, draft.status, draft.run.layout)
    if best == draft.status.best:
        return
    draft.update(best=best)
    if best is not None:
        which = (
            "the base policy"
            if best.iteration == 0
            else f"the policy of iteration {best.iteration}"
        )
        draft.event(
            "Normal",
            "BestPolicy",
            f"best policy by {best.metric}: {which} ({best.policy}) with {best.value:.4f}",
        )


def record_base_report(draft: StatusDraft, report: StageReport, child: str) -> None:
    """The base policy's evaluation: its metrics go to status.baseMetrics."""
    if report.error is not None:
        draft.event("Warning", "ReportUnavailable", f"{child}: {report.error}")
        return
    draft.update(base_metrics=dict(report.metrics))
    if report.incomplete is not None:
        draft.event("Warning", "ReportIncomplete", f"{child}: {report.incomplete}")

"""Prometheus metrics of the operator, served on RLOOP_METRICS_PORT (default 9090)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from rloop_operator.api import RLoopRunStatus
from rloop_operator.lifecycle import Phase
from rloop_operator.planning.actions import EmitEvent

RUNS = Gauge("rloop_runs", "RLoopRuns known to the operator, by phase", ["phase"])
STAGE_SECONDS = Histogram(
    "rloop_stage_duration_seconds",
    "Wall time of finished stages (child created to finished)",
    ["stage", "outcome"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800),
)
RETRIES = Counter("rloop_stage_retries_total", "Failed stages that were retried", ["stage"])
TRANSITIONS = Counter("rloop_transitions_total", "Run events by reason", ["reason"])
RECONCILE_ERRORS = Counter("rloop_reconcile_errors_total", "Reconciles that raised", ["kind"])
RECONCILE_SECONDS = Histogram("rloop_reconcile_seconds", "Time of one reconcile")
API_REQUESTS = Counter(
    "rloop_api_requests", "Requests of the reconciler to the API server, by call", ["call"]
)
DISRUPTIONS = Counter(
    "rloop_disruptions",
    "Attempts that lost their capacity without failing (not counted against maxRetries), "
    "by kind: Eviction, Preemption, NodeLost, KueuePreemption",
    ["kind"],
)
START_LATENCY = Histogram(
    "rloop_child_start_latency_seconds",
    "From a child finishing to the next child being created",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

_phases: dict[tuple[str, str], Phase] = {}


def observe_phase(namespace: str, name: str, phase: Phase | None) -> None:
    """Track one run's phase (None when it is gone) and refresh the per-phase gauge."""
    if phase is None:
        _phases.pop((namespace, name), None)
    else:
        _phases[(namespace, name)] = phase
    for each in Phase:
        RUNS.labels(phase=each.value).set(sum(1 for p in _phases.values() if p is each))


def observe_events(events: Iterable[EmitEvent]) -> None:
    for event in events:
        TRANSITIONS.labels(reason=event.reason).inc()


def observe_disruptions(before: RLoopRunStatus, after: RLoopRunStatus) -> None:
    """Count the disruptions `after` records that `before` did not."""
    known = {d.id for record in before.iterations for d in record.disruptions}
    for record in after.iterations:
        for disruption in record.disruptions:
            if disruption.id not in known:
                DISRUPTIONS.labels(kind=disruption.kind.value).inc()


def serve(port: int) -> None:
    start_http_server(port)

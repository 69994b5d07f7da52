"""The liveness decision: a reconcile that runs past the limit makes the operator unhealthy."""

from __future__ import annotations

from rloop_operator.liveness import stuck_reconciles


def test_only_reconciles_past_the_limit_are_stuck() -> None:
    in_flight = {("ns", "young"): 95.0, ("ns", "old"): 10.0}
    assert stuck_reconciles(in_flight, now=100.0, limit=30.0) == [
        "the reconcile of ns/old has run for 90s (limit 30s)"
    ]


def test_nothing_in_flight_is_alive() -> None:
    assert stuck_reconciles({}, now=100.0, limit=30.0) == []

"""Whether the operator is alive: no reconcile may run for longer than a limit. Pure.

Every API call has a timeout, so a reconcile ends; one that does not (a call without a
timeout, a deadlock) holds its run forever, and only a restart frees it: the liveness
probe fails so that the kubelet restarts the operator.
"""

from __future__ import annotations

from collections.abc import Mapping

RunKey = tuple[str, str]


def stuck_reconciles(in_flight: Mapping[RunKey, float], now: float, limit: float) -> list[str]:
    """What is stuck: reconciles that began (monotonic seconds) more than `limit` ago."""
    return [
        f"the reconcile of {namespace}/{name} has run for {now - began:.0f}s (limit {limit:.0f}s)"
        for (namespace, name), began in sorted(in_flight.items())
        if now - began > limit
    ]

"""Who may take the Lease (client-go's rules)."""

from __future__ import annotations

from datetime import UTC, datetime

from rloop_operator.leader import Holding, may_take

HELD = Holding("replica-a", datetime(2026, 1, 1, tzinfo=UTC), duration_seconds=15)


def test_a_lease_held_by_another_live_replica_is_not_taken() -> None:
    assert not may_take(HELD, "replica-b", unchanged_for=14.9, leading=False)


def test_a_lease_unchanged_for_longer_than_its_duration_is_taken() -> None:
    assert may_take(HELD, "replica-b", unchanged_for=15.1, leading=False)


def test_a_free_or_own_lease_is_taken() -> None:
    assert may_take(None, "replica-b", unchanged_for=0, leading=False)
    assert may_take(Holding("", None, 1), "replica-b", unchanged_for=0, leading=False)
    assert may_take(HELD, "replica-a", unchanged_for=0, leading=False)

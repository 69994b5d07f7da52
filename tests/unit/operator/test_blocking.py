"""plan() when something the run needs is missing or refused: the run waits, saying why."""

from __future__ import annotations

import pytest
from rloop_operator.api import Phase

from tests.unit.operator.world import World

pytestmark = pytest.mark.filterwarnings("error")


def test_the_blocked_condition_names_the_precise_cause() -> None:
    world = World(storage={"uri": "file:///shared/rloop", "volume": {
        "claimName": "lustre-rw", "mountPath": "/shared"}})  # fmt: skip
    world.missing_claim = "lustre-rw"

    world.step()

    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert (blocked.status, blocked.reason) == ("True", "PersistentVolumeClaimNotFound")
    assert (world.status.phase, world.status.reason) == (
        Phase.PENDING,
        "PersistentVolumeClaimNotFound",
    )

"""Every create-time row of docs/invalid-specs.md, through the operator's parser and planner."""

from __future__ import annotations

import pytest
from rloop_operator.api import Phase, SpecError, parse_spec

from tests.unit.operator.invalid_specs import InvalidSpec, invalid_specs, merge_patch
from tests.unit.operator.world import World, spec_dict

ROWS = invalid_specs()
CREATE_TIME = [row for row in ROWS if not row.on_update]


def test_the_table_has_at_least_fifteen_rows() -> None:
    assert len(ROWS) >= 15
    assert [row.number for row in ROWS] == list(range(1, len(ROWS) + 1))


@pytest.mark.parametrize("row", CREATE_TIME, ids=lambda r: f"row{r.number}")
def test_invalid_spec_gets_the_documented_message(row: InvalidSpec) -> None:
    spec = merge_patch(spec_dict(), row.patch)
    if row.caught_by in ("schema", "CEL"):
        with pytest.raises(SpecError) as error:
            parse_spec(spec)
        assert row.local_says in str(error.value)
        return
    assert row.caught_by == "condition"
    world = World()
    world.spec = spec
    if "missing" in str(row.patch):  # the row names an object that does not exist
        world.missing_secret = spec["storage"].get("credentialsSecret")
        world.missing_claim = spec["storage"].get("volume", {}).get("claimName")
    world.step()
    assert world.status.phase in (Phase.FAILED, Phase.PENDING)
    assert row.local_says in (world.status.message or "")

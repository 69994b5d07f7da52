"""Every create-time row of docs/invalid-specs.md, through the operator's parser and planner."""

from __future__ import annotations

import pytest
from rloop_operator.api import SpecError, parse_spec
from rloop_operator.children import run_name_problem
from rloop_operator.lifecycle import Phase
from rloop_operator.planning.actions import CreateChild
from rloop_operator.stages import prerequisites, stages_of

from tests.unit.operator.invalid_specs import InvalidSpec, invalid_specs, merge_patch
from tests.unit.operator.world import World, spec_dict

ROWS = invalid_specs()
CREATE_TIME = [row for row in ROWS if not row.on_update]


def test_the_table_has_at_least_fifteen_rows() -> None:
    assert len(ROWS) >= 15
    assert [row.number for row in ROWS] == list(range(1, len(ROWS) + 1))


@pytest.mark.parametrize("row", CREATE_TIME, ids=lambda r: f"row{r.number}")
def test_invalid_spec_gets_the_documented_message(row: InvalidSpec) -> None:
    if row.run_name is not None:
        assert row.local_says in (run_name_problem(row.run_name) or "")
        return
    spec = merge_patch(spec_dict(), row.spec_patch)
    if row.caught_by in ("schema", "CEL"):
        with pytest.raises(SpecError) as error:
            parse_spec(spec)
        assert row.local_says in str(error.value)
        return
    world = World()
    world.spec = spec
    if row.caught_by == "pod":  # the operator does not look: the run starts
        assert [a.name for a in world.step().actions if isinstance(a, CreateChild)]
        return
    assert row.caught_by == "condition"
    if "missing" in str(row.patch):  # the row names an object that does not exist
        world.missing_claim = spec["storage"].get("volume", {}).get("claimName")
        parsed = parse_spec(spec)
        world.missing_prerequisites = tuple(
            needed
            for needed in prerequisites(parsed, stages_of(parsed))
            if needed.name.startswith("missing")
        )
    world.step()
    assert world.status.phase in (Phase.FAILED, Phase.PENDING)
    assert row.local_says in (world.status.message or "")

"""plan() when the spec of a run that exists is edited, and when a finished run is edited."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.actions import CreateChild, DeleteChild, EmitEvent, Plan

from tests.unit.operator.world import World

pytestmark = pytest.mark.filterwarnings("error")
UNUSABLE = {"dapo": {"steps": 10, "engine": "vllm"}, "resources": {"gpusPerNode": 0}}


def created(result: Plan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, CreateChild)]


def deleted(result: Plan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, DeleteChild)]


def blocked(world: World) -> tuple[str, str, str]:
    condition = next(c for c in world.status.conditions if c.type == "Blocked")
    return condition.status, condition.reason, condition.message


def warnings(result: Plan) -> list[str]:
    return [a.reason for a in result.actions if isinstance(a, EmitEvent) and a.type == "Warning"]


def test_an_edit_that_makes_the_spec_unusable_holds_the_run_and_keeps_its_child() -> None:
    world = World(resources={"gpusPerNode": 0})
    world.step()
    world.spec.update(UNUSABLE)

    result = world.step()

    assert world.status.phase is Phase.RUNNING
    assert created(result) == [] and deleted(result) == []
    status, reason, message = blocked(world)
    assert (status, reason) == ("True", "InvalidSpec")
    assert "spec.dapo.engine: vllm needs GPUs; set spec.resources.gpusPerNode >= 1" in message
    assert "PyTorchJob demo-i00-rl keeps running" in message
    assert warnings(result) == ["InvalidSpec"]
    assert warnings(world.step()) == [], "the same blocker is announced once"


def test_a_held_run_starts_no_child_after_its_running_one_finishes() -> None:
    world = World(resources={"gpusPerNode": 0})
    world.step()
    world.spec.update(UNUSABLE)
    world.step()
    world.finish("demo-i00-rl")

    result = world.step()

    assert created(result) == []
    assert world.status.phase is Phase.PENDING
    status, reason, message = blocked(world)
    assert (status, reason) == ("True", "InvalidSpec")
    assert message.endswith("no child starts until the spec is fixed")


def test_fixing_the_spec_lets_the_held_run_go_on_where_it_was() -> None:
    world = World(resources={"gpusPerNode": 0})
    world.step()
    world.spec.update(UNUSABLE)
    world.step()
    world.finish("demo-i00-rl")
    world.step()
    world.spec["dapo"] = {"steps": 10, "engine": "hf"}

    result = world.step()

    assert created(result) == ["demo-i00-filter"]
    assert world.status.phase is Phase.RUNNING
    assert blocked(world)[:2] == ("False", "NotBlocked")
    assert world.status.message is None


def test_a_spec_the_operator_cannot_parse_holds_a_run_under_way_too() -> None:
    world = World()
    world.step()
    world.spec["iterations"] = "many"  # what no CRD lets through, should a rule be missing

    result = world.step()

    assert world.status.phase is Phase.RUNNING and created(result) == []
    status, reason, message = blocked(world)
    assert (status, reason) == ("True", "InvalidSpec")
    assert "spec.iterations" in message


def test_a_spec_unusable_at_creation_fails_fast_and_fixing_it_starts_the_run() -> None:
    world = World(**UNUSABLE)
    world.step()
    assert (world.status.phase, world.status.reason) == (Phase.FAILED, "InvalidSpec")
    assert world.children == {}
    world.spec["dapo"] = {"steps": 10, "engine": "hf"}

    result = world.step()

    assert created(result) == ["demo-i00-rl"]
    assert world.status.phase is Phase.RUNNING
    assert not [c for c in world.status.conditions if c.type == "Failed"]
    assert any(e.reason == "Reopened" for e in world.events)


def test_growing_iterations_after_success_continues_from_the_last_policy() -> None:
    world = World()
    world.run_to_end()
    assert world.status.phase is Phase.SUCCEEDED
    last_policy = world.status.policy
    world.spec["iterations"] = 3

    result = world.step()

    assert created(result) == ["demo-i02-rl"]
    assert world.status.phase is Phase.RUNNING
    assert world.status.progress == "2/3"
    assert world.status.finished_at is None
    reopened = [e for e in world.events if e.reason == "Reopened"]
    assert [e.message for e in reopened] == [
        f"spec.iterations grew to 3: iteration 3 starts from {last_policy}"
    ]
    world.finish("demo-i02-rl")
    world.step()
    world.finish("demo-i02-filter")
    world.step()
    world.finish("demo-i02-rft")
    world.step()
    assert world.status.phase is Phase.SUCCEEDED and world.status.iteration == 3


def test_raising_max_retries_after_the_retries_ran_out_retries_the_stage() -> None:
    world = World(maxRetries=0)
    world.step()
    world.finish("demo-i00-rl", ok=False, message="NCCL timeout")
    world.step()
    assert (world.status.phase, world.status.reason) == (Phase.FAILED, "StageFailed")
    assert world.step().actions == (), "a failed run stays failed until an edit reopens it"
    world.spec["maxRetries"] = 1

    result = world.step()

    assert created(result) == ["demo-i00-rl-r1"]
    assert world.status.phase is Phase.RUNNING
    assert world.status.stage is Stage.EXPLORING


def test_raising_max_retries_by_too_little_leaves_the_run_failed() -> None:
    world = World(maxRetries=1)
    world.step()
    for name in ("demo-i00-rl", "demo-i00-rl-r1"):
        world.finish(name, ok=False)
        world.step()
        world.advance_clock(60)
        world.step()
    assert world.status.phase is Phase.FAILED
    world.spec["maxRetries"] = 1
    assert created(world.step()) == []
    world.spec["maxRetries"] = 2
    assert created(world.step()) == ["demo-i00-rl-r2"]


def test_a_finished_run_deletes_a_child_that_still_runs() -> None:
    world = World(maxRetries=0)
    world.step()
    world.finish("demo-i00-rl", ok=False)
    # A child of the run that is still running, e.g. left by an older operator version.
    world.children["demo-i00-filter"] = replace(
        world.children["demo-i00-rl"], name="demo-i00-filter", phase=Phase.RUNNING
    )

    result = world.step()

    assert world.status.phase is Phase.FAILED
    assert deleted(result) == ["demo-i00-filter"]
    assert world.children["demo-i00-filter"].deleting
    assert deleted(world.step()) == [], "a child being deleted is not deleted again"


def test_a_run_being_deleted_never_gets_a_new_child() -> None:
    world = World()
    world.step()
    world.deleting = True
    world.finish("demo-i00-rl")

    result = world.step()

    assert created(result) == []
    del world.children["demo-i00-rl"]  # foreground deletion removes the children first
    assert created(world.step()) == []

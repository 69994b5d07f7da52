"""plan() when something the run needs is missing or refused: the run waits, saying why."""

from __future__ import annotations

import itertools

import pytest
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.actions import CreateChild, EmitEvent
from rloop_operator.planning.inputs import Refusal

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


QUOTA = Refusal(
    403,
    "Forbidden",
    'jobs.batch "demo-i00-filter" is forbidden: exceeded quota: jobs, requested: '
    "count/jobs.batch=1, used: count/jobs.batch=0, limited: count/jobs.batch=0",
)


def refused_filter_world() -> World:
    world = World()
    world.step()
    world.finish("demo-i00-rl")
    world.refusing["demo-i00-filter"] = QUOTA
    return world


def test_a_refused_child_blocks_the_run_with_the_api_servers_message() -> None:
    world = refused_filter_world()

    result = world.step()

    assert "demo-i00-filter" not in world.children
    assert (world.status.phase, world.status.active_child) == (Phase.PENDING, None)
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert (blocked.status, blocked.reason) == ("True", "CreateForbidden")
    assert "refused to create Job demo-i00-filter (403 Forbidden): " in blocked.message
    assert "exceeded quota: jobs" in blocked.message
    [event] = [a for a in result.actions if isinstance(a, EmitEvent) and a.type == "Warning"]
    assert event.reason == "CreateForbidden" and "exceeded quota" in event.message
    assert not [e for e in world.events if e.reason == "ChildCreated" and "filter" in e.message]
    assert result.requeue_after == 10


def test_a_refused_child_is_retried_after_a_backoff_that_doubles() -> None:
    world = refused_filter_world()
    for _ in range(200):
        world.step()
        world.advance_clock(1)
    attempts = [when for when, name in world.create_attempts if name == "demo-i00-filter"]
    waits = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert waits[:5] == [10, 10, 20, 40, 60]  # at least the base, at most the cap
    assert set(waits[4:]) == {60}
    forbidden = [e for e in world.events if e.reason == "CreateForbidden"]
    assert len(forbidden) == 1, "the same refusal is announced once"


def test_a_refused_child_is_created_once_the_cause_is_gone() -> None:
    world = refused_filter_world()
    world.step()
    del world.refusing["demo-i00-filter"]
    world.advance_clock(10)

    result = world.step()

    assert CreateChild("demo-i00-filter", 0, Stage.FILTERING) in result.actions
    assert world.status.phase is Phase.RUNNING
    assert world.status.reason is None and world.status.message is None
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert (blocked.status, blocked.reason) == ("False", "NotBlocked")
    assert any(e.reason == "ChildCreated" and "demo-i00-filter" in e.message for e in world.events)


def test_a_kind_that_is_gone_when_the_child_is_created_blocks_as_not_installed() -> None:
    world = World()
    world.refusing["demo-i00-rl"] = Refusal(404, "NotFound", "the server could not find it")

    world.step()

    assert world.children == {}
    assert (world.status.phase, world.status.reason) == (Phase.PENDING, "LauncherNotInstalled")

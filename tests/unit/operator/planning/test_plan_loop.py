"""plan_until_settled(): plan, read the reports the plan asks for, plan again."""

from __future__ import annotations

from rloop_operator.lifecycle import Stage
from rloop_operator.planning.actions import CreateChild, ReadReport
from rloop_operator.planning.plan_loop import plan_until_settled
from rloop_operator.stage_reports import StageReport

from tests.unit.operator.world import FILTER_REPORT, World


def test_a_finished_filter_is_read_once_and_the_next_child_created_in_one_planning_loop() -> None:
    world = World()
    world.step()
    world.finish("demo-i00-rl")
    world.step()
    world.finish("demo-i00-filter")
    reads: list[str] = []

    def read(action: ReadReport) -> StageReport:
        reads.append(action.child)
        return FILTER_REPORT

    result = plan_until_settled(world.view(), world.observed(), world.now, world.settings, read)

    assert reads == ["demo-i00-filter"]
    assert CreateChild("demo-i00-rft", 0, Stage.CONSOLIDATING) in result.actions
    assert result.status.iterations[0].expert_samples == FILTER_REPORT.expert_samples

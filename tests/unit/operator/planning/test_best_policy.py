"""status.best: the paper's checkpoint selection on a validation set, the base policy included."""

from __future__ import annotations

from typing import Any

import pytest
from rloop_operator.api import BestPolicy, SpecError, parse_spec
from rloop_operator.stage_reports import StageReport

from tests.unit.operator.world import World, spec_dict

ROOT = "s3://bucket/rloop/ns/demo/uid-1"
TWO_SETS = {
    "train": "s3://bucket/data/train.parquet",
    "validation": [
        {"name": "heldout", "uri": "s3://bucket/h.parquet", "samples": 8, "passAt": [1, 8]},
        {"name": "aime", "uri": "s3://bucket/a.parquet", "samples": 4, "passAt": [1, 4]},
    ],
}


def scores(heldout_avg: float, aime_pass4: float) -> StageReport:
    return StageReport(metrics={"heldout/avg@8": heldout_avg, "aime/pass@4": aime_pass4})


def run_with(reports: dict[str, StageReport], **overrides: Any) -> World:
    world = World(data=TWO_SETS, iterations=3, **overrides)
    world.reports.update(reports)
    world.run_to_end()
    return world


REPORTS = {
    "demo-i00-base": scores(0.20, 0.50),
    "demo-i00-eval": scores(0.30, 0.25),
    "demo-i01-eval": scores(0.40, 0.50),
    "demo-i02-eval": scores(0.35, 0.75),
}


def test_the_default_is_the_first_sets_avg_at_n() -> None:
    world = run_with(REPORTS)
    assert world.status.best == BestPolicy(
        iteration=2, policy=f"{ROOT}/iter-002/policy", metric="heldout/avg@8", value=0.40
    )


def test_selection_names_the_set_and_the_metric() -> None:
    world = run_with(REPORTS, selection={"validationSet": "aime", "metric": "pass@4"})
    assert world.status.best is not None
    assert (world.status.best.iteration, world.status.best.value) == (3, 0.75)


def test_the_base_policy_is_the_best_when_no_iteration_beats_it_and_an_event_says_so() -> None:
    reports = {
        "demo-i00-base": scores(0.5, 0),
        **{f"demo-i0{k}-eval": scores(0.5, 0) for k in (0, 1, 2)},
    }
    world = run_with(reports)
    assert world.status.best == BestPolicy(
        iteration=0, policy="s3://bucket/models/base", metric="heldout/avg@8", value=0.5
    )
    [event] = [e for e in world.events if e.reason == "BestPolicy"]
    assert "the base policy (s3://bucket/models/base)" in event.message


def test_best_follows_the_run_as_evaluations_arrive() -> None:
    world = World(data=TWO_SETS, iterations=3)
    world.reports.update(REPORTS)
    bests = []
    world.step()
    for _ in range(20):
        if world.status.phase.is_terminal:
            break
        world.finish(world.active())
        world.step()
        bests.append(None if world.status.best is None else world.status.best.iteration)
    assert [b for i, b in enumerate(bests) if i == 0 or b != bests[i - 1]] == [0, 1, 2]


def test_a_vanilla_runs_best_policy_is_a_windows_end_point() -> None:
    world = run_with(REPORTS, mode="vanilla")
    assert world.status.best is not None
    assert world.status.best.policy == f"{ROOT}/iter-001/rl/policy"


def test_without_validation_sets_there_is_no_best() -> None:
    world = World(iterations=1)
    world.run_to_end()
    assert world.status.best is None and world.status.base_metrics == {}


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"validationSet": "gsm8k"}, r"selection.validationSet 'gsm8k' is not in data.validation"),
        (
            {"validationSet": "aime", "metric": "pass@8"},
            r"selection.metric 'pass@8' is not computed",
        ),
    ],
)
def test_a_selection_the_evaluations_cannot_give_names_the_fix(
    selection: dict[str, str], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_dict(data=TWO_SETS, selection=selection))

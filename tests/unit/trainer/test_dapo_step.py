"""The DAPO step's bookkeeping: advantages per group, seeds, mini-batches, the trajectory rows."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from rloop_trainer import toy
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo import collect_groups, mini_batches, sampling_seed, training_sequences
from rloop_trainer.rollout.base import Completion
from rloop_trainer.rollout.groups import Group, PromptTask, Rollout, trajectory_table
from rloop_trainer.schema import TRAJECTORY_SCHEMA


def _group(rewards: list[float], truncated: list[bool], prompt_id: str = "p") -> Group:
    task = PromptTask(prompt_id, "1+1=", [1, 2], "2")
    rollouts = tuple(
        Rollout(Completion([3, i], f"r{i}", cut), reward > 0, reward)
        for i, (reward, cut) in enumerate(zip(rewards, truncated, strict=True))
    )
    return Group(task, 1, rollouts)


def _config(**overrides: Any) -> DapoPhaseConfig:
    settings: dict[str, Any] = {
        "prompts_per_step": 4,
        "updates_per_step": 2,
        "oversample": 3,
        "max_generation_rounds": 5,
    }
    return toy.dapo_config(**(settings | overrides))


class FakeRounds:
    """Generation rounds whose groups are informative for the prompts in `informative`."""

    def __init__(self, informative: set[int]) -> None:
        self.informative = informative
        self.rounds: list[list[int]] = []

    def __call__(self, generation_round: int, order: list[int]) -> list[Group]:
        self.rounds.append(order)
        return [
            _group([1.0, -1.0] if i in self.informative else [-1.0, -1.0], [False] * 2, str(i))
            for i in order
        ]


def test_dynamic_sampling_samples_oversized_rounds_until_it_can_keep_exactly_a_step() -> None:
    generate = FakeRounds(informative=set(range(0, 100, 5)))  # a fifth of the prompts

    step = collect_groups(_config(), 1, 0, 100, generate)

    assert [len(order) for order in generate.rounds] == [12, 12]  # 3 x 4 prompts a round
    assert step.rounds == 2 and step.data_position == 24
    assert len(step.all_groups) == 24  # every group generated, for the trajectory cache
    informative = [g for g in step.all_groups if int(g.task.prompt_id) in generate.informative]
    assert step.kept_groups == informative[:4]


def test_dynamic_sampling_stops_at_the_bound_of_rounds_and_keeps_what_it_found() -> None:
    generate = FakeRounds(informative={7})

    step = collect_groups(_config(max_generation_rounds=3), 1, 0, 36, generate)  # one epoch

    assert step.rounds == 3 and len(step.all_groups) == 36
    assert [g.task.prompt_id for g in step.kept_groups] == ["7"]


def test_without_dynamic_sampling_one_round_of_a_step_is_kept_whole() -> None:
    generate = FakeRounds(informative=set())

    step = collect_groups(_config(dynamic_sampling=False), 1, 8, 100, generate)

    assert [len(order) for order in generate.rounds] == [4]
    assert step.kept_groups == step.all_groups and step.data_position == 12


def test_each_sequence_carries_its_groups_normalised_advantage() -> None:
    groups = [_group([1.0, -1.0, -1.0], [False] * 3), _group([0.5, -1.0], [False, False])]

    sequences = training_sequences(groups, overlong_filtering=False)

    expected = []
    for rewards in ([1.0, -1.0, -1.0], [0.5, -1.0]):
        mean, std = statistics.mean(rewards), statistics.stdev(rewards)
        expected += [(r - mean) / (std + 1e-6) for r in rewards]
    assert [s.advantage for s in sequences] == pytest.approx(expected)


def test_overlong_filtering_leaves_a_truncated_response_out_of_the_loss_not_the_advantage() -> None:
    group = _group([1.0, -2.0, -1.0], [False, True, False])

    kept = training_sequences([group], overlong_filtering=True)

    mean, std = statistics.mean([1.0, -2.0, -1.0]), statistics.stdev([1.0, -2.0, -1.0])
    assert [s.response_ids for s in kept] == [[3, 0], [3, 2]]
    assert [s.advantage for s in kept] == pytest.approx(
        [(1.0 - mean) / (std + 1e-6), (-1.0 - mean) / (std + 1e-6)]
    )
    assert len(training_sequences([group], overlong_filtering=False)) == 3


def test_sampling_seeds_differ_across_steps_rounds_and_ranks() -> None:
    seeds = {
        sampling_seed(0, step, round_, rank)
        for step in range(1, 50)
        for round_ in range(1, 11)
        for rank in range(8)
    }

    assert len(seeds) == 49 * 10 * 8


def test_a_full_step_makes_every_mini_batch_of_the_same_fixed_size() -> None:
    groups = [_group([1.0, -1.0], [False, False], f"p{i}") for i in range(8)]

    batches = mini_batches(groups, groups_per_update=2)

    assert [[g.task.prompt_id for g in batch] for batch in batches] == [
        ["p0", "p1"],
        ["p2", "p3"],
        ["p4", "p5"],
        ["p6", "p7"],
    ]


@pytest.mark.parametrize(("kept", "updates"), [(7, 3), (2, 1), (1, 0), (0, 0)])
def test_a_shortfall_takes_fewer_updates_never_smaller_ones(kept: int, updates: int) -> None:
    groups = [_group([1.0, -1.0], [False, False], f"p{i}") for i in range(kept)]

    batches = mini_batches(groups, groups_per_update=2)

    assert len(batches) == updates
    assert all(len(batch) == 2 for batch in batches)


def test_trajectory_rows_follow_the_schema_with_one_row_per_rollout() -> None:
    groups = [_group([1.0, -1.0], [False, True], "a"), _group([-1.0, -1.0], [False, False], "b")]

    table = trajectory_table(groups, step=3, policy_version=2)

    assert table.schema == TRAJECTORY_SCHEMA
    assert table.column("prompt_id").to_pylist() == ["a", "a", "b", "b"]
    assert table.column("sample_index").to_pylist() == [0, 1, 0, 1]
    assert table.column("truncated").to_pylist() == [False, True, False, False]
    assert set(table.column("policy_version").to_pylist()) == {2}

"""The DAPO step's bookkeeping: advantages per group, seeds, slices, the trajectory rows."""

from __future__ import annotations

import statistics

import pytest
from rloop_trainer.dapo import sampling_seed, training_sequences
from rloop_trainer.dapo_update import TrainSequence, micro_batches, split_evenly
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


def test_each_sequence_carries_its_groups_normalised_advantage() -> None:
    groups = [_group([1.0, -1.0, -1.0], [False] * 3), _group([0.5, -1.0], [False, True])]

    sequences = training_sequences(groups, overlong_filtering=True)

    expected = []
    for rewards in ([1.0, -1.0, -1.0], [0.5, -1.0]):
        mean, std = statistics.mean(rewards), statistics.stdev(rewards)
        expected += [(r - mean) / (std + 1e-6) for r in rewards]
    assert [s.advantage for s in sequences] == pytest.approx(expected)
    assert [s.in_loss for s in sequences] == [True, True, True, True, False]


def test_sampling_seeds_differ_across_steps_rounds_and_ranks() -> None:
    seeds = {
        sampling_seed(0, step, round_, rank)
        for step in range(1, 50)
        for round_ in range(1, 4)
        for rank in range(8)
    }

    assert len(seeds) == 49 * 3 * 8


def test_mini_batches_cover_every_sequence_once_in_near_equal_slices() -> None:
    items = [TrainSequence([1], [2], float(i), True) for i in range(10)]

    slices = split_evenly(items, 3)

    assert [len(s) for s in slices] == [4, 3, 3]
    assert [s.advantage for part in slices for s in part] == [float(i) for i in range(10)]


def test_micro_batches_group_similar_lengths_and_keep_every_sequence_once() -> None:
    lengths = [9, 2, 7, 3, 8, 1, 5]
    items = [TrainSequence([1], [2] * n, float(i), True) for i, n in enumerate(lengths)]

    micros = micro_batches(items, 3)

    assert [len(m) for m in micros] == [3, 3, 1]
    assert sorted(s.advantage for m in micros for s in m) == [float(i) for i in range(7)]
    assert [[len(s.response_ids) for s in m] for m in micros] == [[1, 2, 3], [5, 7, 8], [9]]
    padded = sum(len(m) * max(len(s.response_ids) for s in m) for m in micros)
    in_order = sum(3 * max(lengths[i : i + 3]) for i in range(0, 6, 3)) + lengths[6]
    assert padded < in_order  # 3*3 + 3*8 + 9 = 42 padded tokens instead of 9*3 + 8*3 + 5 = 56


def test_trajectory_rows_follow_the_schema_with_one_row_per_rollout() -> None:
    groups = [_group([1.0, -1.0], [False, True], "a"), _group([-1.0, -1.0], [False, False], "b")]

    table = trajectory_table(groups, step=3, policy_version=2)

    assert table.schema == TRAJECTORY_SCHEMA
    assert table.column("prompt_id").to_pylist() == ["a", "a", "b", "b"]
    assert table.column("sample_index").to_pylist() == [0, 1, 0, 1]
    assert table.column("truncated").to_pylist() == [False, True, False, False]
    assert set(table.column("policy_version").to_pylist()) == {2}

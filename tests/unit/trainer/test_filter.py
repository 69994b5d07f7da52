"""The filter keeps exactly the correct rollouts of hard prompts (a slow reference decides)."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rloop_trainer.config import FilterPhaseConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.filter import (
    TrajectoryFiles,
    build_expert_set,
    choose_expert_rows,
    hard_prompt_mask,
    selection_key,
    success_rate_histogram,
)
from rloop_trainer.schema import EXPERT_SCHEMA, TRAJECTORY_SCHEMA

Row = dict[str, Any]


def rollout(prompt_id: str, step: int, sample: int, correct: bool, response: str = "") -> Row:
    return {
        "prompt_id": prompt_id,
        "step": step,
        "sample_index": sample,
        "generation_round": 0,
        "policy_version": step,
        "prompt": f"question {prompt_id}",
        "response": response or f"answer {prompt_id}/{step}/{sample}",
        "prompt_token_ids": [len(prompt_id), 7],
        "response_token_ids": [step, sample, int(correct)],
        "ground_truth": "42",
        # Shaped reward disagrees with `correct` on purpose: the filter must ignore it.
        "reward": -1.0 if correct else 1.0,
        "correct": correct,
        "truncated": False,
        "response_length": 3,
    }


def write_files(directory: Path, rows: list[Row], files: int) -> TrajectoryFiles:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(files):
        path = directory / f"step-{index:06d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[index::files], schema=TRAJECTORY_SCHEMA), path)
        paths.append(str(path))
    return TrajectoryFiles(paths)


def random_rollouts(rng: random.Random, prompts: int) -> list[Row]:
    rows = []
    for p in range(prompts):
        rate = rng.choice([0.0, 0.05, 0.08, 0.1, 0.3, 0.9])
        for sample in range(rng.randint(1, 60)):
            # Few distinct responses so exact duplicates occur within a prompt.
            response = f"the answer is {rng.randint(0, 2)}"
            rows.append(rollout(f"p{p}", sample // 8, sample % 8, rng.random() < rate, response))
    rng.shuffle(rows)
    return rows


def reference_expert_set(
    rows: list[Row], threshold: float, dedupe: bool, max_per_prompt: int, seed: int
) -> list[tuple[str, int, int, str, float]]:
    """The definition, one prompt at a time."""
    by_prompt: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt_id"]].append(row)
    expert = []
    for prompt_id, group in by_prompt.items():
        rate = sum(row["correct"] for row in group) / len(group)
        if not rate < threshold:
            continue
        correct = [row for row in group if row["correct"]]
        correct.sort(key=lambda r: selection_key(seed, prompt_id, r["step"], 0, r["sample_index"]))
        chosen: list[Row] = []
        for row in correct:
            if dedupe and any(row["response"] == kept["response"] for kept in chosen):
                continue
            chosen.append(row)
        if max_per_prompt:
            chosen = chosen[:max_per_prompt]
        expert += [
            (prompt_id, r["step"], r["sample_index"], r["response"], float(np.float32(rate)))
            for r in chosen
        ]
    return sorted(expert)


def expert_rows(path: Path) -> list[tuple[str, int, int, str, float]]:
    table = pq.read_table(path)
    assert table.schema.equals(EXPERT_SCHEMA)
    return sorted(
        (r["prompt_id"], r["step"], r["sample_index"], r["response"], r["prompt_success_rate"])
        for r in table.to_pylist()
    )


def config(**overrides: Any) -> FilterPhaseConfig:
    return FilterPhaseConfig(
        trajectories_uri="/unused",
        expert_uri="/unused",
        report_uri="/unused",
        output_uri="/unused",
        **overrides,
    )


@pytest.mark.parametrize(
    ("dedupe", "max_per_prompt", "seed"),
    [(False, 0, 0), (True, 0, 0), (False, 2, 1), (True, 1, 7), (True, 3, 3)],
)
def test_expert_set_matches_the_slow_reference_on_random_rollouts(
    tmp_path: Path, dedupe: bool, max_per_prompt: int, seed: int
) -> None:
    rows = random_rollouts(random.Random(seed), prompts=60)
    files = write_files(tmp_path / "trajectories", rows, files=3)
    options = config(hard_threshold=0.1, dedupe=dedupe, max_per_prompt=max_per_prompt, seed=seed)

    report = build_expert_set(files, options, tmp_path / "data.parquet")

    expected = reference_expert_set(rows, 0.1, dedupe, max_per_prompt, seed)
    assert expert_rows(tmp_path / "data.parquet") == expected
    assert report.kept_samples == len(expected)
    assert report.rollouts == len(rows)
    assert report.prompts == len({row["prompt_id"] for row in rows})


def test_choice_does_not_depend_on_how_rollouts_are_split_into_files(tmp_path: Path) -> None:
    rows = random_rollouts(random.Random(5), prompts=30)
    options = config(dedupe=True, max_per_prompt=2, seed=11)
    build_expert_set(write_files(tmp_path / "a", rows, 1), options, tmp_path / "a.parquet")
    build_expert_set(write_files(tmp_path / "b", rows[::-1], 4), options, tmp_path / "b.parquet")
    assert expert_rows(tmp_path / "a.parquet") == expert_rows(tmp_path / "b.parquet")


def test_a_rate_equal_to_the_threshold_is_not_hard(tmp_path: Path) -> None:
    at_threshold = [rollout("edge", 0, s, s == 0) for s in range(10)]  # 1/10
    just_below = [rollout("below", 0, s, s == 0) for s in range(11)]  # 1/11
    files = write_files(tmp_path / "t", at_threshold + just_below, files=2)

    report = build_expert_set(files, config(hard_threshold=0.1), tmp_path / "data.parquet")

    assert [row[0] for row in expert_rows(tmp_path / "data.parquet")] == ["below"]
    assert report.hard_prompts == 1


def test_prompts_with_zero_successes_are_hard_but_give_no_samples(tmp_path: Path) -> None:
    never_solved = [rollout("never", 0, s, False) for s in range(16)]
    files = write_files(tmp_path / "t", never_solved, files=1)

    report = build_expert_set(files, config(), tmp_path / "data.parquet")

    assert report.hard_prompts == 1
    assert report.prompts_with_zero_successes == 1
    assert report.kept_samples == 0
    assert pq.read_table(tmp_path / "data.parquet").num_rows == 0


def test_exact_duplicate_responses_of_one_prompt_are_kept_once(tmp_path: Path) -> None:
    group = [rollout("dup", 0, s, s < 2, response="x = 4") for s in range(30)]
    group.append(rollout("dup", 1, 0, True, response="x = 2 + 2"))
    other_prompt = [rollout("other", 0, s, s == 0, response="x = 4") for s in range(30)]
    files = write_files(tmp_path / "t", group + other_prompt, files=2)

    deduped = build_expert_set(files, config(dedupe=True), tmp_path / "d.parquet")
    kept_all = build_expert_set(files, config(dedupe=False), tmp_path / "k.parquet")

    assert sorted(r[0] + ":" + r[3] for r in expert_rows(tmp_path / "d.parquet")) == [
        "dup:x = 2 + 2",
        "dup:x = 4",
        "other:x = 4",
    ]
    assert deduped.duplicates_dropped == 1
    assert kept_all.kept_samples == 4


def test_a_trajectory_column_of_the_wrong_type_names_the_file_and_column(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([rollout("p", 0, 0, True)], schema=TRAJECTORY_SCHEMA)
    table = table.set_column(
        table.schema.get_field_index("correct"), "correct", pa.array([1], pa.int64())
    )
    path = tmp_path / "step-000001.parquet"
    pq.write_table(table, path)

    with pytest.raises(
        PhaseError, match=rf"{path}: column 'correct' has type int64, expected bool"
    ):
        build_expert_set(TrajectoryFiles([str(path)]), config(), tmp_path / "data.parquet")


def test_a_missing_trajectory_column_names_the_file_and_column(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([rollout("p", 0, 0, True)], schema=TRAJECTORY_SCHEMA)
    path = tmp_path / "step-000001.parquet"
    pq.write_table(table.drop_columns(["response_token_ids"]), path)

    with pytest.raises(PhaseError, match=rf"{path}: column 'response_token_ids' is missing"):
        build_expert_set(TrajectoryFiles([str(path)]), config(), tmp_path / "data.parquet")


def test_hard_prompt_mask_is_strictly_below_the_threshold() -> None:
    successes = np.array([0, 1, 1, 3, 2])
    rollouts = np.array([5, 10, 11, 30, 10])
    assert hard_prompt_mask(successes, rollouts, 0.1).tolist() == [True, False, True, False, False]


def test_histogram_puts_exact_bin_edges_in_the_upper_bin_and_one_in_the_last() -> None:
    histogram = success_rate_histogram(np.array([0, 3, 10, 1, 29]), np.array([10, 10, 10, 10, 30]))
    assert list(histogram.values()) == [1, 1, 0, 1, 0, 0, 0, 0, 0, 2]
    assert next(iter(histogram)) == "[0.0,0.1)"


def test_cap_keeps_the_smallest_keys_of_each_prompt_after_dedupe() -> None:
    codes = np.array([0, 0, 0, 0, 1, 1])
    digests = np.array([5, 5, 6, 7, 5, 5], dtype=np.uint64)
    keys = np.array([40, 10, 30, 20, 2, 1], dtype=np.uint64)

    keep, duplicates, over_cap = choose_expert_rows(codes, digests, keys, True, 2)

    # prompt 0: row 0 duplicates row 1 (larger key); of rows 1, 2, 3 the keys 10 and 20 survive.
    # prompt 1: row 4 duplicates row 5.
    assert keep.tolist() == [False, True, False, True, False, True]
    assert (duplicates, over_cap) == (2, 1)

"""The samples an evaluation records: one row per problem, read back as written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rloop_trainer.errors import PhaseError
from rloop_trainer.eval_samples import ProblemSamples, read_samples, samples_table, write_samples

PROBLEMS = [
    ProblemSamples("heldout", "p0", "16", [[5, 6, 2], [7]], ["3+5=8", "x"], [True, False]),
    ProblemSamples("train", "p1", "3", [[], [1, 1]], ["", "11"], [False, False]),
]


def test_each_problem_row_counts_its_samples_and_correct_ones(tmp_path: Path) -> None:
    table = samples_table(PROBLEMS)

    assert table.column("samples").to_pylist() == [2, 2]
    assert table.column("correct").to_pylist() == [1, 0]
    assert table.column("response_lengths").to_pylist() == [[3, 1], [0, 2]]


def test_samples_round_trip_through_the_store(tmp_path: Path) -> None:
    write_samples(f"file://{tmp_path}", PROBLEMS)

    assert read_samples(f"file://{tmp_path}") == PROBLEMS


def test_a_file_of_another_shape_is_refused_naming_the_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"set": ["a"], "prompt_id": ["p"]}), tmp_path / "samples.parquet")

    with pytest.raises(PhaseError, match="column 'ground_truth' is missing"):
        read_samples(str(tmp_path))

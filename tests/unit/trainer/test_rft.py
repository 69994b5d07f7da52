"""RFT batch order and input checks (no training here; see tests/integration/test_rft_phase.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rloop_trainer.batches import by_length
from rloop_trainer.config import RftPhaseConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.rft import ExpertSet, plan_batches, rank_share, read_expert_set, run_rft_phase
from rloop_trainer.schema import EXPERT_SCHEMA


def expert_row(prompt: list[int], response: list[int]) -> dict[str, object]:
    return {
        "prompt_id": "p",
        "prompt": "1+1=",
        "response": "2",
        "prompt_token_ids": prompt,
        "response_token_ids": response,
        "prompt_success_rate": 0.05,
        "step": 1,
        "sample_index": 0,
    }


def test_each_epoch_visits_every_example_once_in_a_seeded_order() -> None:
    batches = plan_batches(examples=10, epochs=2, batch_size=4, seed=3)

    assert [len(b.indices) for b in batches] == [4, 4, 2, 4, 4, 2]
    for epoch in (0, 1):
        visited = [i for b in batches if b.epoch == epoch for i in b.indices]
        assert sorted(visited) == list(range(10))
    assert plan_batches(10, 2, 4, seed=3) == batches
    assert plan_batches(10, 2, 4, seed=4) != batches


def test_rank_shares_partition_a_global_batch_in_order() -> None:
    batch = [7, 3, 9, 1, 5]
    shares = [rank_share(batch, rank, 3) for rank in range(3)]
    assert shares == [[7, 3], [9, 1], [5]]
    assert rank_share([7], 1, 2) == []


def test_a_share_is_ordered_shortest_sequence_first_for_its_micro_batches() -> None:
    lengths = [(3, 9), (1, 1), (2, 4), (5, 0)]  # prompt, response tokens: 12, 2, 6, 5
    rows = [expert_row([1] * p, [2] * r) for p, r in lengths]
    expert = ExpertSet(pa.Table.from_pylist(rows, schema=EXPERT_SCHEMA))

    assert by_length([0, 1, 2, 3], 2, expert.length) == [[1, 3], [2, 0]]
    micro = expert.micro_batch([1, 3], pad_token_id=0, max_seq_tokens=16)
    assert micro.input_ids.tolist() == [[1, 2, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert micro.target_tokens == 1


def test_expert_file_with_a_wrong_column_type_names_the_file_and_column(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([expert_row([1, 2], [3])], schema=EXPERT_SCHEMA)
    index = table.schema.get_field_index("response_token_ids")
    table = table.set_column(index, "response_token_ids", pa.array([[3.0]], pa.list_(pa.float64())))
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)

    with pytest.raises(PhaseError, match=rf"expert file {path}: column 'response_token_ids' has"):
        read_expert_set(str(path))


def test_expert_file_that_is_not_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_text("prompt,response\n")

    with pytest.raises(PhaseError, match=rf"expert file {path} is not a readable parquet file"):
        read_expert_set(str(path))


def test_policy_path_with_no_model_names_the_path(tmp_path: Path) -> None:
    expert = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist([expert_row([1], [2])], schema=EXPERT_SCHEMA), expert)
    (tmp_path / "policy").mkdir()
    config = RftPhaseConfig(
        policy_uri=str(tmp_path / "policy"),
        expert_uri=str(expert),
        output_uri=str(tmp_path / "out"),
        checkpoint_uri=str(tmp_path / "ckpt"),
    )

    with pytest.raises(PhaseError, match=rf"policy {tmp_path / 'policy'} has no config.json"):
        run_rft_phase(config)
    assert not (tmp_path / "out").exists()

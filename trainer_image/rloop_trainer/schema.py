"""Parquet schemas shared by the phases: DAPO writes trajectories, the filter reads
them and writes the expert set, RFT reads that.

One row per rollout. `correct` is the verifier's verdict and is what the filter
uses; `reward` is the shaped RL reward (overlong shaping can push a correct
answer's reward to 0 or below, so it must never stand in for `correct`).

A reader checks the columns it needs with `check_schema` before reading a row, so a
file of another version fails with its name and column, not deep inside a phase.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from rloop_trainer.errors import PhaseError

TRAJECTORY_SCHEMA = pa.schema(
    [
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("generation_round", pa.int32(), nullable=False),
        pa.field("policy_version", pa.int32(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("prompt_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("response_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("ground_truth", pa.string(), nullable=False),
        pa.field("reward", pa.float32(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("response_length", pa.int32(), nullable=False),
    ]
)

EXPERT_SCHEMA = pa.schema(
    [
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("prompt_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("response_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("prompt_success_rate", pa.float32(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
    ]
)


def check_schema(
    label: str, actual: pa.Schema, expected: pa.Schema, columns: Sequence[str]
) -> None:
    """PhaseError naming `label` and the first of `columns` missing or of the wrong type."""
    for name in columns:
        wanted = expected.field(name).type
        if name not in actual.names:
            raise PhaseError(
                f"{label}: column {name!r} is missing (expected {wanted}); "
                "the file was not written by this version of rloop-trainer"
            )
        found = actual.field(name).type
        if found != wanted:
            raise PhaseError(
                f"{label}: column {name!r} has type {found}, expected {wanted}; "
                "the file was not written by this version of rloop-trainer"
            )

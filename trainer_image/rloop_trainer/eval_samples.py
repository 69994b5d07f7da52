"""What an evaluation records besides its report: every problem's samples and verdicts.

`<eval output_uri>/samples.parquet` holds one row per (validation set, problem):

    set, prompt_id, ground_truth    which problem
    samples, correct                n samples drawn, c of them verified correct
    response_token_ids, response_lengths, responses, verdicts   the n samples, in order

The run-level analysis (run_analysis.py) reads it to compare the run's policies
problem by problem: which problems each one solves, and how alike their responses are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from rloop_trainer import store
from rloop_trainer.schema import check_schema

SAMPLES_FILE = "samples.parquet"

EVAL_SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("set", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("ground_truth", pa.string(), nullable=False),
        pa.field("samples", pa.int32(), nullable=False),
        pa.field("correct", pa.int32(), nullable=False),
        pa.field("response_token_ids", pa.list_(pa.list_(pa.int32())), nullable=False),
        pa.field("response_lengths", pa.list_(pa.int32()), nullable=False),
        pa.field("responses", pa.list_(pa.string()), nullable=False),
        pa.field("verdicts", pa.list_(pa.bool_()), nullable=False),
    ]
)


@dataclass(frozen=True)
class ProblemSamples:
    """One problem of one validation set: its n sampled responses and their verdicts."""

    set_name: str
    prompt_id: str
    ground_truth: str
    token_ids: list[list[int]]
    texts: list[str]
    verdicts: list[bool]

    @property
    def correct(self) -> int:
        return sum(self.verdicts)


def samples_table(problems: Sequence[ProblemSamples]) -> pa.Table:
    return pa.table(
        {
            "set": [p.set_name for p in problems],
            "prompt_id": [p.prompt_id for p in problems],
            "ground_truth": [p.ground_truth for p in problems],
            "samples": [len(p.verdicts) for p in problems],
            "correct": [p.correct for p in problems],
            "response_token_ids": [p.token_ids for p in problems],
            "response_lengths": [[len(ids) for ids in p.token_ids] for p in problems],
            "responses": [p.texts for p in problems],
            "verdicts": [p.verdicts for p in problems],
        },
        schema=EVAL_SAMPLES_SCHEMA,
    )


def write_samples(output_uri: str, problems: Sequence[ProblemSamples]) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(samples_table(problems), sink, compression="zstd")
    store.write_bytes(store.join(output_uri, SAMPLES_FILE), sink.getvalue().to_pybytes())


def read_samples(output_uri: str) -> list[ProblemSamples]:
    """The samples an evaluation wrote under `output_uri`; PhaseError if absent or foreign."""
    uri = store.join(output_uri, SAMPLES_FILE)
    table = pq.read_table(io.BytesIO(store.read_bytes(uri)))
    columns = ("set", "prompt_id", "ground_truth", "response_token_ids", "responses", "verdicts")
    check_schema(uri, table.schema, EVAL_SAMPLES_SCHEMA, columns)
    return [
        ProblemSamples(
            row["set"],
            row["prompt_id"],
            row["ground_truth"],
            row["response_token_ids"],
            row["responses"],
            row["verdicts"],
        )
        for row in table.select(list(columns)).to_pylist()
    ]

"""Reading back what the trackers wrote, with each tool's own reader.

TensorBoard: its EventAccumulator over a run directory. W&B: an offline run is one
`run-<id>.wandb` file, a LevelDB-style log (32 KiB blocks, a 7-byte header per record:
CRC32, length, type) of wandb_internal Record protobufs after a 7-byte file header
(":W&B", magic 0xBEE1, version), the files W&B uploads beside it under files/.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WANDB_IDENT = b":W&B"
WANDB_BLOCK = 32 * 1024
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

Points = list[tuple[int, float]]


@dataclass
class TensorBoardRun:
    scalars: dict[str, Points]
    texts: dict[str, list[str]]
    images: dict[str, list[int]]  # tag -> steps


def tensorboard_run(directory: Path) -> TensorBoardRun:
    """The scalars, texts and images of the event files in `directory` (not below it)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    return TensorBoardRun(
        scalars={t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in tags["scalars"]},
        texts={
            t: [b.decode() for e in accumulator.Tensors(t) for b in e.tensor_proto.string_val]
            for t in tags["tensors"]
        },
        images={t: [e.step for e in accumulator.Images(t)] for t in tags["images"]},
    )


def _log_records(data: bytes) -> list[bytes]:
    """The records of a LevelDB-style log that starts with W&B's file header."""
    assert data[: len(WANDB_IDENT)] == WANDB_IDENT, "not a W&B transaction log"
    records, pending, position = [], b"", RECORD_HEADER
    while position + RECORD_HEADER <= len(data):
        left_in_block = WANDB_BLOCK - position % WANDB_BLOCK
        if left_in_block < RECORD_HEADER:  # the block's tail is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + RECORD_HEADER])
        body = data[position + RECORD_HEADER : position + RECORD_HEADER + length]
        position += RECORD_HEADER + length
        if kind == FULL:
            records.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            records.append(pending + body)
    return records


def _key(item: Any) -> str:
    """W&B writes a history key whole, or as its parts (an image's fields under its key)."""
    return str(item.key) or "/".join(item.nested_key)


@dataclass
class WandbRun:
    run_id: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def wandb_run(run_dir: Path) -> WandbRun:
    """An offline run directory (offline-run-<time>-<id>) as W&B wrote it."""
    from wandb.proto import wandb_internal_pb2

    [log] = run_dir.glob("run-*.wandb")
    run = WandbRun()
    for body in _log_records(log.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(body)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
        elif kind == "config":
            for item in record.config.update:
                run.config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            items = record.history.item
            run.history.append({_key(i): json.loads(i.value_json) for i in items})
    files = run_dir / "files"
    run.files = {
        p.relative_to(files).as_posix(): p.read_bytes() for p in files.rglob("*") if p.is_file()
    }
    return run

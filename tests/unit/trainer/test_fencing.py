"""One writer per phase output: an attempt that a newer one superseded stops writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rloop_trainer import fencing, store
from rloop_trainer.errors import Superseded


def claim_by_another_attempt(output: str, attempt: str) -> None:
    """What a newer attempt of the same phase, in another process, publishes."""
    store.write_bytes(
        store.join(output, fencing.WRITER_NAME), json.dumps({"attempt": attempt}).encode()
    )


def test_the_attempt_that_holds_the_claim_writes(tmp_path: Path) -> None:
    output = str(tmp_path / "rl")
    with fencing.claimed(output, attempt="first") as claim:
        store.write_bytes(store.join(output, "trajectories/step-000001.parquet"), b"rows")
        store.write_marker(output, {"steps": 1})

    assert claim.current_writer() == "first"
    assert store.read_marker(output) == {"steps": 1}


def test_a_superseded_attempt_writes_nothing_more_and_never_publishes_success(
    tmp_path: Path,
) -> None:
    output = str(tmp_path / "rl")
    with fencing.claimed(output, attempt="first"):
        store.write_bytes(store.join(output, "metrics.jsonl"), b"step 1\n")
        claim_by_another_attempt(output, "second")

        with pytest.raises(Superseded, match=r"claimed by attempt second.*this attempt first"):
            store.write_bytes(store.join(output, "metrics.jsonl"), b"step 1\nstep 2\n")
        with pytest.raises(Superseded):
            store.upload_dir(tmp_path, store.join(output, "policy"))
        with pytest.raises(Superseded):
            store.write_marker(output, {"steps": 2})

    assert store.read_bytes(store.join(output, "metrics.jsonl")) == b"step 1\n"
    assert store.read_marker(output) is None
    assert not (tmp_path / "rl" / "policy").exists()


def test_every_prefix_of_the_phase_is_fenced_and_nothing_else(tmp_path: Path) -> None:
    output, checkpoints = str(tmp_path / "policy"), str(tmp_path / "rft" / "checkpoints")
    with fencing.claimed(output, checkpoints, attempt="first"):
        claim_by_another_attempt(output, "second")

        with pytest.raises(Superseded):
            store.write_bytes(store.join(checkpoints, "step-000002/shard.bin"), b"")
        store.write_bytes(str(tmp_path / "policy-other" / "x.bin"), b"x")

    assert (tmp_path / "policy-other" / "x.bin").exists()


def test_an_output_whose_claim_vanished_is_not_written(tmp_path: Path) -> None:
    output = str(tmp_path / "rl")
    with fencing.claimed(output, attempt="first"):
        (tmp_path / "rl" / fencing.WRITER_NAME).unlink()
        with pytest.raises(Superseded, match=r"nobody \(its _WRITER is gone\)"):
            store.write_bytes(store.join(output, "metrics.jsonl"), b"")


def test_ranks_that_do_not_publish_check_the_claim_of_rank_0(tmp_path: Path) -> None:
    output = str(tmp_path / "rl")
    claim_by_another_attempt(output, "rank-0-attempt")
    with fencing.claimed(output, attempt="rank-0-attempt", publish=False):
        store.write_bytes(store.join(output, "checkpoints/step-000002/shard-1.bin"), b"")
    with fencing.claimed(output, attempt="stale", publish=False), pytest.raises(Superseded):
        store.write_bytes(store.join(output, "checkpoints/step-000002/shard-1.bin"), b"")


def test_writes_after_the_block_are_not_fenced(tmp_path: Path) -> None:
    output = str(tmp_path / "rl")
    with fencing.claimed(output, attempt="first"):
        claim_by_another_attempt(output, "second")
    store.write_bytes(store.join(output, "notes.txt"), b"written by a test")


def test_each_attempt_has_its_own_identity() -> None:
    assert fencing.new_attempt() != fencing.new_attempt()

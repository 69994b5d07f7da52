"""The demo's assets: built once per recipe, rebuilt when the recipe changed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from rloop_trainer.demo_assets import build_demo_assets


def snapshot(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_assets_are_built_once_and_rebuilt_for_another_recipe(tmp_path: Path) -> None:
    build_demo_assets(tmp_path, warm_start_steps=1, seed=0)
    built = snapshot(tmp_path)

    build_demo_assets(tmp_path, warm_start_steps=1, seed=0)
    assert snapshot(tmp_path) == built

    # what an older demo, on the one-answer task, left behind
    (tmp_path / "_SUCCESS").write_text(json.dumps({"warm_start_steps": 60, "seed": 0}))
    build_demo_assets(tmp_path, warm_start_steps=1, seed=0)
    marker = json.loads((tmp_path / "_SUCCESS").read_text())
    assert marker == {"task": "scratchpad_sums", "warm_start_steps": 1, "seed": 0}
    heldout = pq.read_table(tmp_path / "heldout.parquet").column("problem").to_pylist()
    assert all(problem.count("+") == 3 for problem in heldout)

"""Filter throughput: our streaming filter vs a plain polars group-by, same data, same run.

    .venv/bin/python bench/filter.py [--rows 5000000] [--prompts 17000] [--data DIR]

Writes synthetic trajectory parquet (one file per RL step, DAPO-17k-sized prompt
set, short responses) once into DIR (a temporary directory by default), then runs
each contender in its own process and reads that process's peak RSS (ru_maxrss
from wait4). Both do the same selection: correct rollouts of prompts with success
rate < 0.1 (and > 0), every column of the expert set, written to parquet; our
dedupe and cap are off so the work is identical. The row counts must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

HARD_THRESHOLD = 0.1
ROWS_PER_FILE = 256 * 1024
PROMPT_TOKENS = 48
RESPONSE_TOKENS = 96
EXPERT_COLUMNS = [
    "prompt_id",
    "prompt",
    "response",
    "prompt_token_ids",
    "response_token_ids",
    "step",
    "sample_index",
]


def _token_lists(rng: np.random.Generator, rows: int, length: int) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    values = pa.array(rng.integers(0, 50_000, rows * length, dtype=np.int32))
    offsets = pa.array(np.arange(0, (rows + 1) * length, length, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def write_synthetic_trajectories(directory: Path, rows: int, prompts: int, seed: int = 0) -> None:
    """Rollouts of `prompts` prompts whose solve rates span 0..1, most below 0.3."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rloop_trainer.schema import TRAJECTORY_SCHEMA

    rng = np.random.default_rng(seed)
    solve_rate = rng.beta(0.4, 1.5, prompts)
    directory.mkdir(parents=True, exist_ok=True)
    for step, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        count = min(ROWS_PER_FILE, rows - start)
        prompt = rng.integers(0, prompts, count)
        correct = rng.random(count) < solve_rate[prompt]
        columns = {
            "prompt_id": pa.array([f"dapo-{p:06d}" for p in prompt]),
            "step": pa.array(np.full(count, step, np.int32)),
            "sample_index": pa.array(np.arange(count, dtype=np.int32) % 16),
            "generation_round": pa.array(np.zeros(count, np.int32)),
            "policy_version": pa.array(np.full(count, step, np.int32)),
            "prompt": pa.array([f"Solve problem {p}." for p in prompt]),
            "response": pa.array([f"step {step} row {i}: the answer is 7" for i in range(count)]),
            "prompt_token_ids": _token_lists(rng, count, PROMPT_TOKENS),
            "response_token_ids": _token_lists(rng, count, RESPONSE_TOKENS),
            "ground_truth": pa.array(["7"] * count),
            "reward": pa.array(np.where(correct, 1.0, -1.0).astype(np.float32)),
            "correct": pa.array(correct),
            "truncated": pa.array(np.zeros(count, bool)),
            "response_length": pa.array(np.full(count, RESPONSE_TOKENS, np.int32)),
        }
        table = pa.table(columns).cast(TRAJECTORY_SCHEMA)
        pq.write_table(table, directory / f"step-{step:06d}.parquet")


def run_ours(data: Path, output: Path) -> int:
    from rloop_trainer.config import FilterPhaseConfig
    from rloop_trainer.filter import TrajectoryFiles, build_expert_set

    config = FilterPhaseConfig(
        trajectories_uri=str(data),
        expert_uri=str(output),
        report_uri=str(output.parent / "report.json"),
        output_uri=str(output.parent),
        hard_threshold=HARD_THRESHOLD,
        dedupe=False,
    )
    files = TrajectoryFiles([str(p) for p in sorted(data.glob("*.parquet"))])
    return build_expert_set(files, config, output).kept_samples


def run_polars(data: Path, output: Path, engine: str) -> int:
    import polars as pl
    import pyarrow.parquet as pq

    rollouts = pl.scan_parquet(str(data / "*.parquet"))
    rates = (
        rollouts.group_by("prompt_id")
        .agg(pl.col("correct").mean().alias("prompt_success_rate"))
        .filter(
            (pl.col("prompt_success_rate") < HARD_THRESHOLD) & (pl.col("prompt_success_rate") > 0)
        )
    )
    expert = (
        rollouts.filter(pl.col("correct"))
        .join(rates, on="prompt_id", how="inner")
        .select([*EXPERT_COLUMNS, pl.col("prompt_success_rate").cast(pl.Float32)])
    )
    if engine == "streaming":
        expert.sink_parquet(output)
    else:
        expert.collect().write_parquet(output)
    return int(pq.ParquetFile(output).metadata.num_rows)


def prepare_data(data: Path, rows: int, prompts: int) -> dict[str, float]:
    """Write the synthetic trajectories unless `data` holds some; their size."""
    import pyarrow.parquet as pq

    if not any(data.glob("*.parquet")):
        write_synthetic_trajectories(data, rows, prompts)
    files = sorted(data.glob("*.parquet"))
    return {
        "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in files),
        "mib": sum(p.stat().st_size for p in files) / 2**20,
    }


def child_main(args: argparse.Namespace) -> dict[str, float]:
    if args.child == "prepare":
        return prepare_data(args.data, args.rows, args.prompts)
    if args.child == "ours":
        return {"expert_rows": run_ours(args.data, args.out)}
    engine = args.child.removeprefix("polars-")
    return {"expert_rows": run_polars(args.data, args.out, engine)}


def in_child(child: str, args: argparse.Namespace, output: Path) -> dict[str, float]:
    """Run one step in a fresh process; its reply plus wall time and peak RSS.

    The parent imports neither pyarrow nor polars, so the ru_maxrss a child
    inherits from it (Linux keeps the high-water mark across fork and exec)
    stays far below what the contenders use.
    """
    command = [sys.executable, __file__, "--child", child, "--data", str(args.data)]
    command += ["--out", str(output), "--rows", str(args.rows), "--prompts", str(args.prompts)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    reply = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench step {child} failed")
    result: dict[str, float] = json.loads(reply)
    return {**result, "seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--prompts", type=int, default=17_000)
    parser.add_argument("--data", type=Path, help="keep the synthetic data here for reuse")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_main(args)))
        return
    with tempfile.TemporaryDirectory(prefix="rloop-bench-filter-") as scratch:
        args.data = args.data or Path(scratch) / "trajectories"
        print(f"synthetic trajectories in {args.data} ...", flush=True)
        data = in_child("prepare", args, Path(scratch))
        rows = data["rows"]
        print(f"{rows:,.0f} rollouts, {args.prompts:,} prompts, {data['mib']:,.0f} MiB of parquet")
        results = {
            name: in_child(name, args, Path(scratch) / f"{name}.parquet")
            for name in ("ours", "polars-in-memory", "polars-streaming")
        }
    ours = results["ours"]
    for name, result in results.items():
        if result["expert_rows"] != ours["expert_rows"]:
            raise SystemExit(
                f"{name} kept {result['expert_rows']} rows, ours {ours['expert_rows']}"
            )
        print(
            f"{name:18s} {rows / result['seconds']:>12,.0f} rows/s  {result['seconds']:7.1f} s  "
            f"peak RSS {result['peak_rss_mib']:7,.0f} MiB  expert rows {result['expert_rows']:,.0f}"
        )
    for name in ("polars-in-memory", "polars-streaming"):
        print(
            f"ours / {name}: throughput x{results[name]['seconds'] / ours['seconds']:.2f}, "
            f"peak memory x{ours['peak_rss_mib'] / results[name]['peak_rss_mib']:.2f}"
        )


if __name__ == "__main__":
    main()

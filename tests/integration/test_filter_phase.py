"""`rloop-trainer filter` as the operator runs it: a config, a store, outputs and a marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rloop_trainer.cli import EXIT_PERMANENT
from rloop_trainer.schema import EXPERT_SCHEMA, TRAJECTORY_SCHEMA

if TYPE_CHECKING:
    from tests.cluster.s3 import S3Endpoint

TRAINER = str(Path(sys.executable).parent / "rloop-trainer")


def rollouts(prompt_id: str, step: int, correct: int, total: int) -> list[dict[str, Any]]:
    return [
        {
            "prompt_id": prompt_id,
            "step": step,
            "sample_index": sample,
            "generation_round": 0,
            "policy_version": step,
            "prompt": f"what is {prompt_id}?",
            "response": f"{prompt_id} is {sample}",
            "prompt_token_ids": [1, 2, 3],
            "response_token_ids": [4, sample],
            "ground_truth": "0",
            "reward": 1.0 if sample < correct else -1.0,
            "correct": sample < correct,
            "truncated": False,
            "response_length": 2,
        }
        for sample in range(total)
    ]


def write_phase_trajectories(directory: Path) -> None:
    """Two steps; `hard` is solved 1/20 times, `easy` 10/20, `never` 0/20."""
    directory.mkdir(parents=True)
    for step in (1, 2):
        rows = (
            rollouts("hard", step, correct=1 if step == 1 else 0, total=10)
            + rollouts("easy", step, correct=5, total=10)
            + rollouts("never", step, correct=0, total=10)
        )
        table = pa.Table.from_pylist(rows, schema=TRAJECTORY_SCHEMA)
        pq.write_table(table, directory / f"step-{step:06d}.parquet")


def run_filter(config: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None) -> Any:
    config_path = tmp_path / "filter.json"
    # The files the operator names explicitly, where it puts them (rloop_operator.layout).
    output = config["output_uri"]
    explicit = {"expert_uri": f"{output}/data.parquet", "report_uri": f"{output}/report.json"}
    config_path.write_text(json.dumps(explicit | config))
    return subprocess.run(
        [TRAINER, "filter", "--config", str(config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_filter_phase_writes_expert_set_report_and_marker_last(tmp_path: Path) -> None:
    write_phase_trajectories(tmp_path / "iter-000/rl/trajectories")
    output = tmp_path / "iter-000/expert"
    config = {
        "trajectories_uri": f"file://{tmp_path}/iter-000/rl/trajectories",
        "output_uri": f"file://{output}",
    }

    result = run_filter(config, tmp_path)

    assert result.returncode == 0, result.stderr
    expert = pq.read_table(output / "data.parquet")
    assert expert.schema.equals(EXPERT_SCHEMA)
    assert expert.to_pylist() == [
        {
            "prompt_id": "hard",
            "prompt": "what is hard?",
            "response": "hard is 0",
            "prompt_token_ids": [1, 2, 3],
            "response_token_ids": [4, 0],
            "prompt_success_rate": pytest.approx(0.05),
            "step": 1,
            "sample_index": 0,
        }
    ]
    report = json.loads((output / "report.json").read_text())
    assert report["rollouts"] == 60
    assert report["prompts"] == 3
    assert report["hard_prompts"] == 2
    assert report["prompts_with_zero_successes"] == 1
    assert report["kept_samples"] == 1
    assert report["hard_threshold"] == 0.1
    assert json.loads((output / "_SUCCESS").read_text())["kept_samples"] == 1
    written = [output / "data.parquet", output / "report.json"]
    assert all((output / "_SUCCESS").stat().st_mtime_ns >= p.stat().st_mtime_ns for p in written)


def test_rerun_with_another_threshold_overwrites_cleanly(tmp_path: Path) -> None:
    write_phase_trajectories(tmp_path / "trajectories")
    output = tmp_path / "expert"
    config: dict[str, Any] = {
        "trajectories_uri": str(tmp_path / "trajectories"),
        "output_uri": str(output),
    }
    assert run_filter(config, tmp_path).returncode == 0

    result = run_filter({**config, "hard_threshold": 0.6}, tmp_path)

    assert result.returncode == 0, result.stderr
    # 1 hard + 5 easy: both steps of `easy` say the same 5 things, kept once each.
    assert pq.read_table(output / "data.parquet").num_rows == 6
    assert json.loads((output / "_SUCCESS").read_text())["kept_samples"] == 6
    written = sorted(p.name for p in output.iterdir())
    assert written == ["_SUCCESS", "_WRITER", "data.parquet", "report.json"]


def test_no_trajectories_fails_naming_the_uri_and_writes_no_marker(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    config = {"trajectories_uri": str(tmp_path / "empty"), "output_uri": str(tmp_path / "out")}

    result = run_filter(config, tmp_path)

    assert result.returncode == EXIT_PERMANENT
    assert f"trajectories_uri={tmp_path / 'empty'}" in result.stderr
    assert not (tmp_path / "out/_SUCCESS").exists()


@pytest.mark.s3
def test_filter_phase_reads_and_writes_s3(tmp_path: Path, s3_server: S3Endpoint) -> None:
    from tests.cluster.s3 import s3_client

    write_phase_trajectories(tmp_path / "trajectories")
    client = s3_client(s3_server)
    prefix = f"filter-{tmp_path.name}"
    for path in sorted((tmp_path / "trajectories").iterdir()):
        client.upload_file(str(path), s3_server.bucket, f"{prefix}/rl/trajectories/{path.name}")
    config = {
        "trajectories_uri": f"s3://{s3_server.bucket}/{prefix}/rl/trajectories",
        "output_uri": f"s3://{s3_server.bucket}/{prefix}/expert",
    }

    result = run_filter(config, tmp_path, env=s3_server.client_env())

    assert result.returncode == 0, result.stderr
    client.download_file(s3_server.bucket, f"{prefix}/expert/data.parquet", str(tmp_path / "e.pq"))
    marker = client.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/expert/_SUCCESS")
    assert pq.read_table(tmp_path / "e.pq")["prompt_id"].to_pylist() == ["hard"]
    assert json.loads(marker["Body"].read())["rollouts"] == 60


def test_a_rerun_that_fails_leaves_no_marker_claiming_the_old_output(tmp_path: Path) -> None:
    trajectories = tmp_path / "trajectories"
    write_phase_trajectories(trajectories)
    output = tmp_path / "expert"
    config = {"trajectories_uri": f"file://{trajectories}", "output_uri": f"file://{output}"}
    assert run_filter(config, tmp_path).returncode == 0
    assert (output / "_SUCCESS").exists()
    (trajectories / "step-000003.parquet").write_bytes(b"not parquet")

    rerun = run_filter(config, tmp_path)

    assert rerun.returncode == EXIT_PERMANENT
    assert "step-000003.parquet" in rerun.stderr
    assert not (output / "_SUCCESS").exists()

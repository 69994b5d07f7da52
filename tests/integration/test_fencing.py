"""Two live attempts of one DAPO phase on one output: the older one stops writing."""

from __future__ import annotations

from pathlib import Path

import pytest
from rloop_trainer import store
from rloop_trainer.cli import EXIT_SUPERSEDED

from tests.integration.test_dapo_phase import (
    ToyInputs,
    _run_cli,
    _wait_for,
    dapo_config,
    read_metrics,
    read_trajectories,
    toy_inputs,  # noqa: F401 (the module-scoped fixture)
)

pytestmark = pytest.mark.slow


def test_an_attempt_that_a_newer_one_took_over_from_stops_and_exits(
    toy_inputs: ToyInputs,  # noqa: F811
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(output),
        steps=12,
        checkpoint_every=2,
    )
    older = _run_cli(config, tmp_path / "older.log")
    _wait_for(output / "trajectories" / "step-000001.parquet", older, timeout_s=300)

    newer = _run_cli(config, tmp_path / "newer.log")

    assert older.wait(timeout=600) == EXIT_SUPERSEDED
    assert newer.wait(timeout=900) == 0, (tmp_path / "newer.log").read_text()[-3000:]
    older_log = (tmp_path / "older.log").read_text()
    assert f"rloop-trainer dapo: {output} is now claimed by attempt" in older_log
    assert store.read_marker(str(output)) is not None
    assert [m["step"] for m in read_metrics(output)] == list(range(1, 13))
    rows = read_trajectories(output)
    keys = [(r["step"], r["generation_round"], r["prompt_id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys))

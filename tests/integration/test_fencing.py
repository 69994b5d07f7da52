"""Two live attempts of one DAPO phase on one output: the older one stops writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rloop_trainer import store
from rloop_trainer.cli import EXIT_SUPERSEDED
from rloop_trainer.fencing import WRITER_NAME

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


def writer_of(output: Path) -> str:
    return str(json.loads((output / WRITER_NAME).read_text())["attempt"])


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"phase exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"not reached in {timeout_s}s"
        time.sleep(0.1)


# Two trainer starts (torch, the model, DeepSpeed) on two cores that other work shares:
# over the suite's 900 s when the machine is busy.
@pytest.mark.timeout(1800)
def test_an_attempt_that_a_newer_one_took_over_from_stops_and_exits(
    toy_inputs: ToyInputs,  # noqa: F811
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(output),
        steps=6,
        checkpoint_every=2,
    )
    older = _run_cli(config, tmp_path / "older.log")
    _wait_for(output / "trajectories" / "step-000001.parquet", older, timeout_s=600)
    older_attempt = writer_of(output)
    # Stalled while the newer attempt starts (a node cut off, a slow pod teardown), so that
    # the newer one claims the output before the older one can finish.
    os.kill(older.pid, signal.SIGSTOP)
    try:
        newer = _run_cli(config, tmp_path / "newer.log")
        wait_until(lambda: writer_of(output) != older_attempt, newer, timeout_s=600)
    finally:
        os.kill(older.pid, signal.SIGCONT)

    assert older.wait(timeout=300) == EXIT_SUPERSEDED
    assert newer.wait(timeout=600) == 0, (tmp_path / "newer.log").read_text()[-3000:]
    older_log = (tmp_path / "older.log").read_text()
    assert f"rloop-trainer dapo: {output} is now claimed by attempt" in older_log
    marker = store.read_marker(str(output))
    assert marker is not None
    assert [m["step"] for m in read_metrics(output)] == [1, 2, 3, 4, 5, 6]
    rows = read_trajectories(output)
    keys = [(r["step"], r["generation_round"], r["prompt_id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["step"] for r in rows} == {1, 2, 3, 4, 5, 6}

"""No phase waits forever: not on a build lock a killed phase left, not on a rank that went
silent in the middle of a step."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rloop_trainer import store

from tests.integration.test_dapo_phase import (
    ToyInputs,
    _fresh_process_env,
    _wait_for,
    dapo_config,
    toy_inputs,  # noqa: F401 (the module-scoped fixture)
    two_rank_command,
)

pytestmark = pytest.mark.slow
COLLECTIVE_TIMEOUT_S = 20
# torchrun gives a worker 30 s to stop after a SIGTERM (a stopped one cannot) before SIGKILL.
TORCHRUN_STOP_S = 30


def test_a_build_lock_left_by_a_killed_phase_does_not_hold_up_the_next_one(
    toy_inputs: ToyInputs,  # noqa: F811
    tmp_path: Path,
) -> None:
    # What a phase killed during DeepSpeed's first JIT build of its CPU shm op leaves in
    # torch's extensions dir: a lock that torch's FileBaton.wait waits on forever.
    extensions = tmp_path / "torch_extensions"
    stale_lock = extensions / "deepspeed_shm_comm" / "lock"
    stale_lock.parent.mkdir(parents=True)
    stale_lock.touch()
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir), str(toy_inputs.train_data), str(output), steps=1
    )
    command = [sys.executable, "-m", "rloop_trainer.cli", "dapo"]
    env = _fresh_process_env() | {"TORCH_EXTENSIONS_DIR": str(extensions)}
    timeout_s = 300

    try:
        done = subprocess.run(
            [*command, "--config-json", config.model_dump_json()],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"still running after {timeout_s} s, on {stale_lock}? {expired.stderr!r}")

    assert done.returncode == 0, done.stderr[-3000:]
    assert store.read_marker(str(output)) is not None


def worker_of_rank(torchrun: int, rank: int) -> int:
    """The pid of torchrun's worker process of `rank`."""
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == torchrun and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    raise AssertionError(f"torchrun {torchrun} has no worker of rank {rank}")


def test_a_rank_stopped_mid_step_makes_the_other_fail_naming_it_and_the_phase_ends(
    toy_inputs: ToyInputs,  # noqa: F811
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(output),
        steps=4,
        prompts_per_step=8,
        updates_per_step=2,
        micro_batch=3,
        collective_timeout_seconds=COLLECTIVE_TIMEOUT_S,
    )
    termination = tmp_path / "termination-log"
    log = tmp_path / "phase.log"
    env = _fresh_process_env() | {"RLOOP_TERMINATION_MESSAGE_PATH": str(termination)}
    with log.open("wb") as sink:
        torchrun = subprocess.Popen(
            two_rank_command(config), stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    silent = None
    try:
        # Rank 0 caches step 1's rollouts between generation and the update's collectives.
        _wait_for(output / "trajectories" / "step-000001.parquet", torchrun, timeout_s=400)
        silent = worker_of_rank(torchrun.pid, rank=1)
        os.kill(silent, signal.SIGSTOP)
        stopped_at = time.monotonic()
        line = f"rank 0: collective timeout ({COLLECTIVE_TIMEOUT_S} s): silent (no heartbeat "
        line += "in the rendezvous store): rank 1 for"
        deadline = stopped_at + COLLECTIVE_TIMEOUT_S + 15  # beats and a loaded machine
        while line not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)

        code = torchrun.wait(timeout=TORCHRUN_STOP_S + 30)
        stopped_rank_left = Path(f"/proc/{silent}").exists()
    finally:
        if silent is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(silent, signal.SIGKILL)
        torchrun.kill()
        torchrun.wait()

    assert code != 0
    assert not stopped_rank_left, "torchrun must end the stopped rank too (its GPUs are freed)"
    failure = json.loads(termination.read_text())
    assert failure["error"].startswith(line)
    assert (failure["reason"], failure["permanent"]) == ("CollectiveTimeout", False)
    assert store.read_marker(str(output)) is None

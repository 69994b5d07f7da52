"""`rloop run` as a user runs it: the local executor, torchrun and the trainer as processes.

A tiny vanilla run (one DAPO phase of 4 steps, a checkpoint every 2) on the demo's toy
model and data, on a file:// store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from rloop_operator.demo import demo_run_document
from rloop_trainer.demo_assets import build_demo_assets
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
RLOOP = Path(sys.executable).parent / "rloop"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's assets (a warm-started tiny model, toy prompts) under workdir/assets."""
    root = tmp_path_factory.mktemp("local-run")
    build_demo_assets(root / "assets", warm_start_steps=60, seed=0)
    return root


def write_run(workdir: Path, name: str, **spec: Any) -> Path:
    """A one-phase run (vanilla DAPO, no evaluation) with its own store under workdir."""
    document = demo_run_document(workdir, "vanilla", iterations=1)
    document["metadata"]["name"] = name
    document["spec"]["data"].pop("validation")
    document["spec"]["storage"]["uri"] = f"file://{workdir}/{name}-store"
    for key, value in spec.items():  # a section given is merged into the demo's
        section = document["spec"].get(key)
        document["spec"][key] = section | value if isinstance(section, dict) else value
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def start_rloop(run_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """`rloop run`, in a process group of its own as a shell would start it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLOOP_")}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(RLOOP), "run", str(run_file), "--state-dir", str(run_file.with_suffix(".state"))],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"},
            start_new_session=True,
        )


def status_of(run_file: Path) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(
        (run_file.with_suffix(".state") / "status.json").read_text()
    )
    return status


def phase_output(workdir: Path, name: str) -> Path:
    """The DAPO output of the run's only iteration (namespace local, uid local)."""
    return workdir / f"{name}-store" / "local" / name / "local" / "iter-000" / "rl"


def trainer_pids(store_dir: Path) -> set[int]:
    """Live trainer processes (torchrun's workers, not torchrun) writing under `store_dir`.

    A process that a trainer starts (a math-verify worker, DeepSpeed's compiler probes) has
    the trainer's command line from its fork until its exec: Python starts it with vfork,
    and /proc shows the parent's arguments meanwhile. It is the trainer's child, not a second
    trainer, so a match whose parent matches too is not counted."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state, parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        command = b" ".join(argv)
        trainer = any(a.endswith(b"/rloop-trainer") for a in argv[:2])
        ours = b"torchrun" not in command and str(store_dir).encode() in command
        if trainer and ours and state not in ("Z", "X"):
            parents[int(proc.name)] = int(parent)
    return {pid for pid, parent in parents.items() if parent not in parents}


def wait_for(condition: Any, what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"rloop run exited with {process.returncode} before {what}"
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f}s"
        time.sleep(0.2)


def trajectories(output: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted((output / "trajectories").glob("step-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


@pytest.fixture(scope="module")
def uninterrupted(workdir: Path) -> Path:
    """The phase output of the run, neither killed nor stalled."""
    clean = write_run(workdir, "clean")
    assert start_rloop(clean, workdir / "clean.log").wait(timeout=900) == 0
    return phase_output(workdir, "clean")


def assert_same_phase_output(output: Path, uninterrupted: Path) -> None:
    assert trajectories(output) == trajectories(uninterrupted)
    resumed = load_file(output / "policy" / "model.safetensors")
    expected = load_file(uninterrupted / "policy" / "model.safetensors")
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in resumed)


# Three trainer starts (torchrun, the model, DeepSpeed) and eight DAPO steps, on two cores
# that other work shares: over the suite's 900 s when the machine is busy.
@pytest.mark.timeout(1800)
def test_an_executor_killed_mid_phase_and_restarted_at_once_leaves_one_writer(
    workdir: Path, uninterrupted: Path
) -> None:
    run_file = write_run(workdir, "killed")
    output = phase_output(workdir, "killed")
    first = start_rloop(run_file, workdir / "killed.log")
    checkpoint = output / "checkpoints" / "step-000002" / "_SUCCESS"
    wait_for(checkpoint.exists, "the checkpoint of step 2", first, timeout=600)
    (old_trainer,) = trainer_pids(output)

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = start_rloop(run_file, workdir / "killed.log")
    writers_in_order: list[int] = []
    while second.poll() is None:
        writers = trainer_pids(output)
        assert len(writers) <= 1, f"two trainers write {output}: {writers}"
        writers_in_order += [pid for pid in writers if pid not in writers_in_order]
        time.sleep(0.2)

    assert second.returncode == 0, (workdir / "killed.log").read_text()[-3000:]
    # The old trainer may outlive its executor for a moment (until the restarted executor has
    # seen it gone), but never once a new one has started.
    new_writers = [pid for pid in writers_in_order if pid != old_trainer]
    assert new_writers, "the restarted executor's trainer was never seen"
    assert old_trainer not in writers_in_order[writers_in_order.index(new_writers[0]) :]
    assert status_of(run_file)["phase"] == "Succeeded"
    assert_same_phase_output(output, uninterrupted)


# Longer than any step, and than a trainer's start, of this run on a busy machine.
PROGRESS_TIMEOUT_S = 120
# `rloop run`, each transition on a line.
EXECUTOR = """
import sys
from pathlib import Path
from rloop_operator.local_executor import LocalExecutor

def report(run, line):
    if line:
        print(line, flush=True)

status = LocalExecutor(Path(sys.argv[1]), Path(sys.argv[2]), report).run()
sys.exit(0 if status.phase.value == "Succeeded" else 1)
"""


@pytest.mark.timeout(1800)
def test_a_phase_that_stops_making_progress_is_stopped_and_resumed_from_its_checkpoint(
    workdir: Path, uninterrupted: Path
) -> None:
    run_file = write_run(
        workdir, "stalled", maxRetries=0, resources={"progressTimeout": f"{PROGRESS_TIMEOUT_S}s"}
    )
    state = run_file.with_suffix(".state")
    output = phase_output(workdir, "stalled")
    log = workdir / "stalled.log"
    command = [sys.executable, "-c", EXECUTOR, str(run_file), str(state)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLOOP_")}
    with log.open("wb") as sink:
        executor = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env | {"OMP_NUM_THREADS": "1"},
            start_new_session=True,
        )
    try:
        checkpoint = output / "checkpoints" / "step-000002" / "_SUCCESS"
        wait_for(checkpoint.exists, "the checkpoint of step 2", executor, timeout=600)
        (stopped,) = trainer_pids(output)
        os.kill(stopped, signal.SIGSTOP)  # hung, whatever the cause

        code = executor.wait(timeout=1200)
        stopped_trainer_left = Path(f"/proc/{stopped}").exists()
    finally:
        if executor.poll() is None:
            os.killpg(executor.pid, signal.SIGKILL)
            executor.wait()

    lines = log.read_text().splitlines()
    assert code == 0, lines[-20:]
    stall = [line for line in lines if line.startswith("stalled-i00-rl stalled at step")]
    assert len(stall) == 1, lines
    assert re.fullmatch(
        r"stalled-i00-rl stalled at step [12] since \S+: no progress for \d+ s \(progress "
        rf"timeout {PROGRESS_TIMEOUT_S} s\); stopping it, to retry from its checkpoint",
        stall[0],
    )
    assert not stopped_trainer_left
    [record] = status_of(run_file)["iterations"][0]["disruptions"]
    assert (record["child"], record["kind"], record["reason"]) == (
        "stalled-i00-rl",
        "Hang",
        "Stalled",
    )
    assert (
        record["message"]
        == "PyTorchJob stalled-i00-rl hung: "
        + stall[0].removeprefix("stalled-i00-rl ").split(";")[0]
    )
    assert status_of(run_file)["iterations"][0]["failedJobs"] == []
    assert_same_phase_output(output, uninterrupted)


def test_a_run_whose_training_data_is_missing_fails_at_once_with_the_trainers_line(
    workdir: Path,
) -> None:
    missing = workdir / "no-such-train.parquet"
    run_file = write_run(workdir, "nodata", maxRetries=2)
    document = yaml.safe_load(run_file.read_text())
    document["spec"]["data"]["train"] = f"file://{missing}"
    run_file.write_text(yaml.safe_dump(document))

    done = start_rloop(run_file, workdir / "nodata.log").wait(timeout=600)

    assert done == 1
    status = status_of(run_file)
    line = (
        f"rloop-trainer dapo: file://{missing} does not exist; "
        "check the URI or run the phase that writes it"
    )
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "InvalidInput",
        line,
    )
    assert status["iterations"][0]["failedJobs"] == ["nodata-i00-rl"]
    assert f"Failed: {line}" in (workdir / "nodata.log").read_text()

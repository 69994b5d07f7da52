"""`rloop run` as a user runs it: the local executor, torchrun and the trainer as processes.

A tiny vanilla run (one DAPO phase of 4 steps, a checkpoint every 2) on the demo's toy
model and data, on a file:// store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rloop_operator.demo import demo_run_document
from rloop_trainer.demo_assets import build_demo_assets

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
    document["spec"] |= spec
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

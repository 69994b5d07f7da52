"""spec.tracking end to end: the phases of a tiny RLoop iteration, each a trainer process
as the operator runs it, log to a real MLflow server (sqlite, artifacts in the test S3),
to TensorBoard event files and to an offline W&B run in the run's store prefix (the test
S3); each tool's own reader reads them back. A tracker that is down, or that answers 500
mid-phase, is one warning in the phase log and the phase finishes.

The phase configs are the operator's (phase_config) with the tracking section and the
run's RL step added as the operator will add them once spec.tracking is in the CRD
(issue 23): `tracked_config` below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rloop_operator.api import RLoopRunSpec, parse_spec, parse_status
from rloop_operator.demo import demo_run_document
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import trainer_config
from rloop_operator.planning.inputs import RunView
from rloop_operator.stages import stage_info
from rloop_trainer.demo_assets import build_demo_assets
from rloop_trainer.tracking.session import DROPPED

from tests.cluster.mlflow import MlflowServer, faulty_proxy
from tests.cluster.procs import free_port
from tests.cluster.s3 import S3Endpoint, s3_client
from tests.integration.tracker_files import tensorboard_run, wandb_run
from tests.unit.trainer.test_tracking_names import VERL_DAPO_NAMES

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.timeout(1800)]
TRAINER = Path(sys.executable).parent / "rloop-trainer"
EXPERIMENT = "rloop-tests"
DAPO_STEPS = 2
ITERATION_0 = [
    Stage.EVALUATING_BASE,
    Stage.EXPLORING,
    Stage.FILTERING,
    Stage.CONSOLIDATING,
    Stage.EVALUATING,
]
# The names (as verl logs them) and timings of every part of a step.
VERL_NAMES = [*sorted(VERL_DAPO_NAMES), "timing_s/step", "timing_s/gen", "timing_s/update_actor"]
DROPPED_LINE = DROPPED.split("%s")[1]


def rl_step_before(spec: RLoopRunSpec, iteration: int, stage: Stage) -> int:
    """RunRef.rl_step: the run's RL steps before the phase. A DAPO phase (an RLoop
    iteration's or a vanilla window) starts after `iteration` phases of dapo.steps; the
    filter, RFT and evaluation of an iteration come after its DAPO phase."""
    if stage is Stage.EVALUATING_BASE:
        return 0
    return spec.dapo.steps * (iteration + (stage is not Stage.EXPLORING))


def tracked_config(
    run: RunView, iteration: int, stage: Stage, tracking: dict[str, Any]
) -> dict[str, Any]:
    """What the operator renders once spec.tracking is wired: the phase config with the
    run's RL step in `run` and spec.tracking plus the run's tracker-files URI, the spec
    and the selection metric in `tracking`."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    config = trainer_config(run, iteration, stage)
    config["run"]["rl_step"] = rl_step_before(spec, iteration, stage)
    config["tracking"] = tracking | {
        "files_uri": f"{run.layout.root}/tracking",
        "run_spec": spec.model_dump(mode="json", by_alias=True),
        "selection_metric": spec.selection_metric,
    }
    return config


def demo_run(workdir: Path, store_uri: str, name: str) -> RunView:
    """The demo's RLoop run, one iteration of DAPO_STEPS steps, its store at `store_uri`."""
    spec = demo_run_document(workdir, "rloop", iterations=1)["spec"]
    spec["dapo"]["steps"] = DAPO_STEPS
    spec["storage"]["uri"] = store_uri
    return RunView(name, "team-a", f"uid-{name}", 1, parse_spec(spec), parse_status({}))


def start_phase(
    config: dict[str, Any], stage: Stage, workdir: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """`rloop-trainer <phase> --config FILE`, one rank, as a pod runs it; and its log."""
    name = f"{config['run']['name']}-{stage_info(stage).slug}"
    path, log = workdir / f"{name}.json", workdir / f"{name}.log"
    path.write_text(json.dumps(config))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(TRAINER), stage_info(stage).phase, "--config", str(path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return process, log


def run_phase(config: dict[str, Any], stage: Stage, workdir: Path, env: dict[str, str]) -> str:
    """The phase run to its end; its log."""
    process, log = start_phase(config, stage, workdir, env)
    code = process.wait(timeout=900)
    text = log.read_text(errors="replace")
    assert code == 0, f"{stage_info(stage).phase} failed:\n{text[-4000:]}"
    return text


def trainer_env(s3: S3Endpoint | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLOOP_", "WANDB_"))}
    env |= s3.client_env() if s3 is not None else {}
    return env | {"OMP_NUM_THREADS": "1"}  # the toy model: one thread is fastest here


def download(s3: S3Endpoint, uri: str, into: Path) -> Path:
    """Every object under the s3:// prefix `uri`, as files under `into`."""
    client = s3_client(s3)
    prefix = uri.removeprefix(f"s3://{s3.bucket}/").rstrip("/") + "/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            target = into / item["Key"].removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read())
    return into


@dataclass(frozen=True)
class TrackedRun:
    run: RunView
    logs: dict[Stage, str]
    tracking_files: Path  # <run root>/tracking, downloaded from the store


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracking")
    build_demo_assets(root / "assets", warm_start_steps=60, seed=0)
    return root


@pytest.fixture(scope="module")
def tracked_run(workdir: Path, s3_server: S3Endpoint, mlflow_server: MlflowServer) -> TrackedRun:
    """Iteration 0 of the demo run with MLflow, TensorBoard and offline W&B all on."""
    run = demo_run(workdir, f"s3://{s3_server.bucket}/runs", "tiny")
    tracking = {
        "mlflow": {"tracking_uri": mlflow_server.tracking_uri, "experiment_name": EXPERIMENT},
        "tensorboard": True,
        "wandb": {"project": "rloop-tests", "mode": "offline"},
    }
    env = trainer_env(s3_server)
    logs = {
        stage: run_phase(tracked_config(run, 0, stage, tracking), stage, workdir, env)
        for stage in ITERATION_0
    }
    files = download(s3_server, f"{run.layout.root}/tracking", workdir / "tracking")
    return TrackedRun(run, logs, files)


def test_no_phase_warns_about_a_healthy_tracker(tracked_run: TrackedRun) -> None:
    for stage, log in tracked_run.logs.items():
        assert DROPPED_LINE not in log, f"{stage}: {log[-2000:]}"


def store_bytes(s3: S3Endpoint, uri: str) -> bytes:
    key = uri.removeprefix(f"s3://{s3.bucket}/")
    body: bytes = s3_client(s3).get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    return body


def mlflow_runs(server: MlflowServer, run: RunView) -> tuple[Any, dict[str, Any]]:
    """The RLoopRun's MLflow run and its nested runs by name, through MLflow's client."""
    from mlflow import MlflowClient

    client = MlflowClient(server.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    key = f"{run.namespace}/{run.name}/{run.uid}"
    [parent] = client.search_runs(
        [experiment.experiment_id],
        f"tags.`rloop.run` = '{key}' and tags.`rloop.level` = 'run'",
    )
    nested = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    return parent, {phase.info.run_name: phase for phase in nested}


def steps_of(server: MlflowServer, run_id: str, key: str) -> list[int]:
    from mlflow import MlflowClient

    return [m.step for m in MlflowClient(server.tracking_uri).get_metric_history(run_id, key)]


PHASE_LABELS = [
    "eval/rl-step-000000",
    "iter-000/dapo",
    "iter-000/filter",
    "iter-000/rft",
    f"eval/rl-step-{DAPO_STEPS:06d}",
]


def test_mlflow_has_one_run_per_rlooprun_the_spec_as_parameters_and_a_run_per_phase(
    tracked_run: TrackedRun, mlflow_server: MlflowServer
) -> None:
    parent, phases = mlflow_runs(mlflow_server, tracked_run.run)

    assert (parent.info.run_name, parent.info.status) == ("tiny", "FINISHED")
    assert parent.data.params["mode"] == "rloop"
    assert parent.data.params["dapo.steps"] == str(DAPO_STEPS)
    assert parent.data.params["data.validation.0.name"] == "heldout"
    assert sorted(phases) == sorted(PHASE_LABELS)
    assert {phase.info.status for phase in phases.values()} == {"FINISHED"}
    dapo = phases["iter-000/dapo"].data.params
    assert dapo["steps"] == str(DAPO_STEPS) and dapo["run.rl_step"] == "0"
    assert phases["iter-000/rft"].data.params["run.rl_step"] == str(DAPO_STEPS)


def test_mlflow_curves_lie_on_the_runs_rl_steps_with_verls_names(
    tracked_run: TrackedRun, mlflow_server: MlflowServer, s3_server: S3Endpoint
) -> None:
    from mlflow import MlflowClient

    parent, phases = mlflow_runs(mlflow_server, tracked_run.run)
    run_id = parent.info.run_id
    client = MlflowClient(mlflow_server.tracking_uri)

    for name in VERL_NAMES:
        assert steps_of(mlflow_server, run_id, name) == [1, 2], name
    metrics_uri = tracked_run.run.layout.dapo_metrics(0)
    records = [json.loads(line) for line in store_bytes(s3_server, metrics_uri).splitlines()]
    scores = [m.value for m in client.get_metric_history(run_id, "critic/score/mean")]
    assert scores == pytest.approx([r["kept_reward"] for r in records])
    for name in ("val/heldout/avg_at_8", "val/heldout/pass_at_8", "best/iteration"):
        assert steps_of(mlflow_server, run_id, name) == [0, DAPO_STEPS], name
    assert steps_of(mlflow_server, run_id, "filter/hard_prompts") == [DAPO_STEPS]
    assert steps_of(mlflow_server, run_id, "rft/loss") == [DAPO_STEPS]
    rft = phases["iter-000/rft"].info.run_id
    assert steps_of(mlflow_server, rft, "rft/epoch_loss") == [1]
    assert steps_of(mlflow_server, phases["iter-000/dapo"].info.run_id, "actor/pg_loss") == [1, 2]


def test_mlflow_artifacts_are_the_runs_analysis_kept_in_s3(
    tracked_run: TrackedRun, mlflow_server: MlflowServer, s3_server: S3Endpoint, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    parent, _ = mlflow_runs(mlflow_server, tracked_run.run)
    client = MlflowClient(mlflow_server.tracking_uri)
    analysis_uri = tracked_run.run.layout.analysis()
    document = json.loads(store_bytes(s3_server, f"{analysis_uri}/analysis.json"))

    listed = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    assert listed == {f"analysis/{n}" for n in ["analysis.json", *document["pictures"]]}
    copy = Path(
        client.download_artifacts(parent.info.run_id, "analysis/analysis.json", str(tmp_path))
    )
    assert copy.read_bytes() == store_bytes(s3_server, f"{analysis_uri}/analysis.json")
    keys = [
        item["Key"]
        for item in s3_client(s3_server).list_objects_v2(
            Bucket=s3_server.bucket, Prefix=mlflow_server.artifacts_prefix
        )["Contents"]
    ]
    assert any(
        key.endswith(f"{parent.info.run_id}/artifacts/analysis/analysis.json") for key in keys
    )


def test_tensorboard_event_files_in_the_store_hold_the_runs_curves(
    tracked_run: TrackedRun,
) -> None:
    board = tensorboard_run(tracked_run.tracking_files / "tensorboard")

    for name in VERL_NAMES:
        assert [step for step, _ in board.scalars[name]] == [1, 2], name
    assert [step for step, _ in board.scalars["val/heldout/avg_at_8"]] == [0, DAPO_STEPS]
    assert [step for step, _ in board.scalars["rft/loss"]] == [DAPO_STEPS]
    assert board.images["analysis/validation.png"] == [0, DAPO_STEPS]
    assert "parameters/iter-000/dapo/text_summary" in board.texts
    rft = tensorboard_run(tracked_run.tracking_files / "tensorboard" / "iter-000" / "rft")
    assert [step for step, _ in rft.scalars["rft/epoch_loss"]] == [1]


def test_wandb_offline_runs_in_the_store_are_one_run_with_the_curves_and_the_analysis(
    tracked_run: TrackedRun, s3_server: S3Endpoint
) -> None:
    runs = [wandb_run(d) for d in sorted((tracked_run.tracking_files / "wandb").iterdir())]

    assert len(runs) == len(ITERATION_0), "one offline run directory per phase"
    assert len({run.run_id for run in runs}) == 1 and {run.name for run in runs} == {"tiny"}
    history = [row for run in runs for row in run.history]
    for name in [*VERL_NAMES, "val/heldout/avg@8", "rft/loss"]:
        steps = sorted(int(row["rl_step"]) for row in history if name in row)
        expected = {"val/heldout/avg@8": [0, DAPO_STEPS], "rft/loss": [DAPO_STEPS]}
        assert steps == expected.get(name, [1, 2]), name
    config = {key: value for run in runs for key, value in run.config.items()}
    assert config["mode"] == "rloop" and config["dapo"]["steps"] == DAPO_STEPS
    assert set(PHASE_LABELS) <= config.keys()
    last_evaluation = runs[-1].files["analysis/analysis.json"]
    analysis_uri = tracked_run.run.layout.analysis()
    assert last_evaluation == store_bytes(s3_server, f"{analysis_uri}/analysis.json")


def dapo_metrics_steps(store_dir: Path, run: RunView) -> list[int]:
    path = Path(run.layout.dapo_metrics(0).removeprefix("file://"))
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_an_unreachable_tracker_is_one_warning_and_the_phase_finishes(workdir: Path) -> None:
    run = demo_run(workdir, f"file://{workdir}/down-store", "down")
    tracking = {"mlflow": {"tracking_uri": f"http://127.0.0.1:{free_port()}"}, "tensorboard": True}
    config = tracked_config(run, 0, Stage.EXPLORING, tracking)

    log = run_phase(config, Stage.EXPLORING, workdir, trainer_env())

    warnings = [line for line in log.splitlines() if DROPPED_LINE in line]
    assert len(warnings) == 1 and "tracker mlflow failed" in warnings[0], warnings
    assert dapo_metrics_steps(workdir, run) == [1, 2]
    board = tensorboard_run(Path(f"{run.layout.root}/tracking/tensorboard".removeprefix("file://")))
    assert [step for step, _ in board.scalars["critic/score/mean"]] == [1, 2]


def test_a_tracker_answering_500_mid_phase_is_one_warning_and_the_phase_finishes(
    workdir: Path, mlflow_server: MlflowServer
) -> None:
    run = demo_run(workdir, f"file://{workdir}/flaky-store", "flaky")
    metrics = Path(run.layout.dapo_metrics(0).removeprefix("file://"))
    with faulty_proxy(mlflow_server.tracking_uri) as proxy:
        tracking = {"mlflow": {"tracking_uri": proxy.url, "experiment_name": EXPERIMENT}}
        config = tracked_config(run, 0, Stage.EXPLORING, tracking)
        process, log = start_phase(config, Stage.EXPLORING, workdir, trainer_env())
        wait_for_first_step(metrics, process)
        proxy.answer_500()
        assert process.wait(timeout=900) == 0, log.read_text()[-4000:]

    warnings = [line for line in log.read_text().splitlines() if DROPPED_LINE in line]
    assert len(warnings) == 1 and "tracker mlflow failed" in warnings[0], warnings
    assert "500" in warnings[0]
    assert proxy.answered_500 > 0
    assert dapo_metrics_steps(workdir, run) == [1, 2]
    parent, phases = mlflow_runs(mlflow_server, run)
    assert list(phases) == ["iter-000/dapo"], "the tracker worked until it failed"
    assert len(steps_of(mlflow_server, parent.info.run_id, "critic/score/mean")) < DAPO_STEPS


def wait_for_first_step(metrics: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600
    print(f"waiting up to 600s for the first step in {metrics}")
    while not (metrics.exists() and metrics.read_text().strip()):
        assert process.poll() is None, "the phase ended before its first step"
        assert time.monotonic() < deadline, "no step within 600s"
        time.sleep(0.1)

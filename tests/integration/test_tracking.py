"""spec.tracking end to end: the phases of a tiny RLoop iteration log to a real MLflow
server (sqlite, artifacts in the test S3), to TensorBoard event files and to an offline W&B
run in the run's store prefix; each tool's own reader reads them back. Once as the operator
runs them (each child's container command and environment from its manifest, the
trackers' Secret mounted), once as `rloop run` runs them. A tracker that is down, or that
answers 500 mid-phase, is one warning in the phase log and the phase finishes.
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
import yaml
from rloop_operator.api import parse_spec, parse_status
from rloop_operator.children import child_name
from rloop_operator.demo import demo_run_document
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest, trainer_config
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView
from rloop_operator.stages import stage_info
from rloop_trainer.demo_assets import build_demo_assets
from rloop_trainer.tracking.session import DROPPED

from tests.cluster.mlflow import MlflowServer, faulty_proxy
from tests.cluster.procs import free_port
from tests.cluster.s3 import S3Endpoint, s3_client
from tests.integration.pod_commands import container_of, mount_projected_secrets, pod_env
from tests.integration.tracker_files import tensorboard_run, wandb_run
from tests.unit.trainer.test_tracking_names import VERL_DAPO_NAMES

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.timeout(1800)]
TRAINER = Path(sys.executable).parent / "rloop-trainer"
RLOOP = Path(sys.executable).parent / "rloop"
EXPERIMENT = "rloop-tests"
STORE_SECRET, TRACKER_SECRET = "s3-creds", "tracker-creds"
Secrets = dict[str, dict[str, str]]
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


def demo_document(
    workdir: Path, name: str, tracking: dict[str, Any], storage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The demo's RLoopRun, one iteration of DAPO_STEPS steps, with spec.tracking."""
    document = demo_run_document(workdir, "rloop", iterations=1)
    document["metadata"]["name"] = name
    document["spec"]["dapo"]["steps"] = DAPO_STEPS
    document["spec"]["tracking"] = tracking
    document["spec"]["storage"] = storage or {"uri": f"file://{workdir}/{name}-store"}
    return document


def demo_run(
    workdir: Path, name: str, tracking: dict[str, Any], storage: dict[str, Any] | None = None
) -> RunView:
    spec = parse_spec(demo_document(workdir, name, tracking, storage)["spec"])
    return RunView(name, "team-a", f"uid-{name}", 1, spec, parse_status({}))


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


def trainer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLOOP_", "WANDB_"))}
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


def all_trackers(mlflow_server: MlflowServer) -> dict[str, Any]:
    return {
        "mlflow": {"trackingUri": mlflow_server.tracking_uri, "experimentName": EXPERIMENT},
        "tensorboard": True,
        "wandb": {"project": "rloop-tests", "mode": "offline"},
        "credentialsSecrets": [TRACKER_SECRET],
    }


def run_as_the_operator(run: RunView, stage: Stage, workdir: Path, secrets: Secrets) -> str:
    """The stage's child container, run with the command and environment of its manifest
    and the pod's mounted Secrets; its output."""
    request = CreateChild(child_name(run.name, 0, stage, 0), 0, stage)
    manifest = child_manifest(run, request, ManifestSettings(trainer_image="unused-here"))
    pod = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"] if (
        manifest["kind"] == "PyTorchJob") else manifest["spec"]["template"]  # fmt: skip
    pod_dir = workdir / f"pod-{request.name}"
    pod_dir.mkdir()
    mount_projected_secrets(pod, secrets, pod_dir)
    container = container_of(manifest)
    env = pod_env(container, secrets, pod_dir) | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        container["command"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{request.name} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def tracked_run(workdir: Path, s3_server: S3Endpoint, mlflow_server: MlflowServer) -> TrackedRun:
    """Iteration 0 of the demo run with MLflow, TensorBoard and offline W&B all on, its
    children run as the operator's manifests say."""
    storage = {
        "uri": f"s3://{s3_server.bucket}/runs", "endpoint": s3_server.endpoint_url,
        "region": s3_server.region, "credentialsSecret": STORE_SECRET,
    }  # fmt: skip
    run = demo_run(workdir, "tiny", all_trackers(mlflow_server), storage)
    secrets = {
        STORE_SECRET: {
            "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        },
        TRACKER_SECRET: {"WANDB_API_KEY": "0" * 40},
    }
    logs = {stage: run_as_the_operator(run, stage, workdir, secrets) for stage in ITERATION_0}
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
    tracking = {"mlflow": {"trackingUri": f"http://127.0.0.1:{free_port()}"}, "tensorboard": True}
    run = demo_run(workdir, "down", tracking)
    config = trainer_config(run, 0, Stage.EXPLORING)

    log = run_phase(config, Stage.EXPLORING, workdir, trainer_env())

    warnings = [line for line in log.splitlines() if DROPPED_LINE in line]
    assert len(warnings) == 1 and "tracker mlflow failed" in warnings[0], warnings
    assert dapo_metrics_steps(workdir, run) == [1, 2]
    board = tensorboard_run(Path(f"{run.layout.root}/tracking/tensorboard".removeprefix("file://")))
    assert [step for step, _ in board.scalars["critic/score/mean"]] == [1, 2]


def test_a_tracker_answering_500_mid_phase_is_one_warning_and_the_phase_finishes(
    workdir: Path, mlflow_server: MlflowServer
) -> None:
    with faulty_proxy(mlflow_server.tracking_uri) as proxy:
        tracking = {"mlflow": {"trackingUri": proxy.url, "experimentName": EXPERIMENT}}
        run = demo_run(workdir, "flaky", tracking)
        metrics = Path(run.layout.dapo_metrics(0).removeprefix("file://"))
        config = trainer_config(run, 0, Stage.EXPLORING)
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


@pytest.fixture(scope="module")
def local_run(workdir: Path, mlflow_server: MlflowServer) -> RunView:
    """Iteration 0 of the demo run with MLflow, TensorBoard and offline W&B all on, as
    `rloop run` runs it (no tracker Secret: locally the trackers read the environment)."""
    trackers = {k: v for k, v in all_trackers(mlflow_server).items() if k != "credentialsSecrets"}
    document = demo_document(workdir, "local-tiny", trackers)
    path = workdir / "local-tiny.yaml"
    path.write_text(yaml.safe_dump(document))
    command = [str(RLOOP), "run", str(path), "--state-dir", str(workdir / "local-state")]
    done = subprocess.run(
        command, env=trainer_env(), capture_output=True, text=True, timeout=1500, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    spec = parse_spec(document["spec"])
    return RunView("local-tiny", "local", "local", 1, spec, parse_status({}))


def test_a_local_run_shows_its_curves_parameters_and_artifacts_in_every_tracker(
    local_run: RunView, mlflow_server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    parent, phases = mlflow_runs(mlflow_server, local_run)
    assert (parent.info.run_name, parent.info.status) == ("local-tiny", "FINISHED")
    assert parent.data.params["dapo.steps"] == str(DAPO_STEPS)
    assert sorted(phases) == sorted(PHASE_LABELS)
    for name in VERL_NAMES:
        assert steps_of(mlflow_server, parent.info.run_id, name) == [1, 2], name
    artifacts = MlflowClient(mlflow_server.tracking_uri).list_artifacts(
        parent.info.run_id, "analysis"
    )
    assert "analysis/analysis.json" in {a.path for a in artifacts}
    files = Path(f"{local_run.layout.root}/tracking".removeprefix("file://"))
    board = tensorboard_run(files / "tensorboard")
    assert [step for step, _ in board.scalars["critic/score/mean"]] == [1, 2]
    runs = [wandb_run(d) for d in sorted((files / "wandb").iterdir())]
    assert len(runs) == len(ITERATION_0) and len({run.run_id for run in runs}) == 1

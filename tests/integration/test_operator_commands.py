"""The operator's manifests, executed: one full iteration runs the exact command and
environment of each child's container on a tiny model against a real S3 server, and
every stage finds its inputs where the previous stage's manifest put them.

The only translations are the pod's files: the container's /scratch emptyDir and its
termination-message file live in a temp directory here, and secretKeyRef values come
from the Secret's data.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rloop_operator.api import RLoopRunSpec, parse_spec, parse_status
from rloop_operator.children import child_name
from rloop_operator.layout import RunLayout
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest, trainer_config
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView
from rloop_operator.stage_reports import (
    parse_eval_report,
    parse_filter_report,
    read_report,
    report_from_messages,
)
from rloop_operator.stages import stage_info, stages_of
from rloop_trainer import s3, store, toy

from tests.cluster.s3 import S3Endpoint
from tests.integration.pod_commands import container_of, pod_env

pytestmark = [pytest.mark.s3, pytest.mark.slow]
SECRET = "s3-creds"


@pytest.fixture
def run(s3_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunView:
    """A run whose base model and data were put in the bucket as a user would."""
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    s3.configure()
    bucket = f"s3://{s3_server.bucket}"
    policy = toy.build_policy(tmp_path / "policy", warm_start_steps=60)
    store.upload_dir(policy, f"{bucket}/models/toy")
    toy.write_prompts(toy.make_problems("train", 64, seed=1), f"{bucket}/data/train.parquet")
    toy.write_prompts(toy.make_problems("heldout", 8, seed=2), f"{bucket}/data/heldout.parquet")
    spec = parse_spec({
        "model": {"base": f"{bucket}/models/toy"},
        "data": {"train": f"{bucket}/data/train.parquet", "validation": [
            {"name": "heldout", "uri": f"{bucket}/data/heldout.parquet", "samples": 4,
             "passAt": [1, 4]},
        ]},
        "iterations": 2,
        "dapo": {"steps": 2, "groupSize": 4, "promptsPerStep": 4, "updatesPerStep": 1,
                 "maxPromptTokens": 16, "maxResponseTokens": 12, "overlongBuffer": 2,
                 "lr": 1e-4, "microBatch": 8, "checkpointEvery": 1, "engine": "hf"},
        "rft": {"lr": 1e-4, "microBatch": 8, "batchSize": 8, "maxSeqTokens": 32},
        "eval": {"maxResponseTokens": 12},
        "resources": {"gpusPerNode": 0},
        "storage": {"uri": f"{bucket}/runs", "endpoint": s3_server.endpoint_url,
                    "region": s3_server.region, "credentialsSecret": SECRET},
    })  # fmt: skip
    return RunView("commands", "team-a", "uid-1", 1, spec, parse_status({}))


def next_inputs(run: RunView, stage: Stage) -> list[str]:
    """What the stage after `stage` reads, taken from that stage's own phase config."""
    layout: RunLayout = run.layout
    if stage is Stage.EVALUATING_BASE:
        return [layout.base_eval_report(), layout.analysis_report()]
    if stage is Stage.EXPLORING:
        trajectories = trainer_config(run, 0, Stage.FILTERING)["trajectories_uri"]
        return store.list_uris(trajectories, suffix=".parquet")[:1]
    if stage is Stage.FILTERING:
        return [trainer_config(run, 0, Stage.CONSOLIDATING)["expert_uri"]]
    if stage is Stage.CONSOLIDATING:
        policy = trainer_config(run, 1, Stage.EXPLORING)["policy_uri"]
        return [store.join(policy, "config.json"), store.join(policy, "model.safetensors")]
    return [layout.eval_report(0), layout.analysis_report()]  # the latter for `rloop report`


def test_one_iteration_of_manifest_commands_hands_each_stage_its_inputs(
    run: RunView, s3_server: S3Endpoint, tmp_path: Path
) -> None:
    secret = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
    }
    settings = ManifestSettings(trainer_image="unused-here")
    assert isinstance(run.spec, RLoopRunSpec)
    assert stages_of(run.spec)[-1] is Stage.EVALUATING
    for stage in stages_of(run.spec):
        request = CreateChild(child_name(run.name, 0, stage, 0), 0, stage)
        container = container_of(child_manifest(run, request, settings))
        scratch = tmp_path / f"scratch-{stage.value}"
        scratch.mkdir()
        done = subprocess.run(
            container["command"], env=pod_env(container, {SECRET: secret}, scratch),
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.returncode == 0, f"{request.name} failed:\n{output}"
        inputs = next_inputs(run, stage)
        assert inputs, f"after {stage.value}, nothing for the next stage to read"
        missing = [uri for uri in inputs if not store.exists(uri)]
        assert missing == [], f"after {stage.value}, the next stage cannot find {missing}"
    # The operator reads the reports the phases wrote, as it fills the run's status: from
    # the pods' termination messages, the same as from the store.
    expert = read_report(run.layout.expert_report(0), parse_filter_report, run.spec.storage, secret)
    assert expert.error is None and expert.trajectories and expert.trajectories >= 2 * 4 * 4
    evaluation = read_report(run.layout.eval_report(0), parse_eval_report, run.spec.storage, secret)
    assert evaluation.error is None
    assert set(evaluation.metrics) == {"heldout/avg@4", "heldout/pass@1", "heldout/pass@4"}
    for stage, from_store in ((Stage.FILTERING, expert), (Stage.EVALUATING, evaluation)):
        message = (tmp_path / f"scratch-{stage.value}" / "termination").read_text()
        assert report_from_messages([message], stage_info(stage).report.parse) == from_store

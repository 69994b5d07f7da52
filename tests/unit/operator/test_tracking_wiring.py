"""spec.tracking through the operator: what every phase config gets, where each phase lies on
the run's RL steps, and the trackers' Secrets mounted in every phase pod."""

from __future__ import annotations

import pytest
from rloop_contract.tracking import CREDENTIALS_DIR_ENV
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import trainer_config
from rloop_operator.pod_template import TRACKING_CREDENTIALS

from tests.unit.operator.test_manifests import manifest, master_pod, run_of, trainjob_pod_patch

TRACKERS = {
    "mlflow": {"trackingUri": "http://mlflow.mlflow:5000", "experimentName": "math"},
    "tensorboard": True,
    "credentialsSecrets": ["mlflow-token", "wandb-key"],
}


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_with_trackers_every_phase_gets_them_with_the_runs_files_and_spec(stage: Stage) -> None:
    data = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}
    run = run_of(tracking=TRACKERS, data=data)

    tracking = trainer_config(run, 1, stage)["tracking"]

    assert tracking["mlflow"] == {
        "tracking_uri": "http://mlflow.mlflow:5000",
        "experiment_name": "math",
    }
    assert tracking["tensorboard"] is True and tracking["wandb"] is None
    assert tracking["files_uri"] == f"{run.layout.root}/tracking"
    assert tracking["run_spec"]["tracking"]["credentialsSecrets"] == ["mlflow-token", "wandb-key"]
    assert tracking["selection_metric"] == "v/avg@32"


def test_without_trackers_no_phase_config_has_a_tracking_section() -> None:
    assert all(
        "tracking" not in trainer_config(run_of(), 1, s) for s in Stage if s is not Stage.NONE
    )


@pytest.mark.parametrize(
    ("stage", "rl_step"),
    [(Stage.EVALUATING_BASE, 0), (Stage.EXPLORING, 20), (Stage.FILTERING, 30),
     (Stage.CONSOLIDATING, 30), (Stage.EVALUATING, 30)],
)  # fmt: skip
def test_each_phase_lies_on_the_runs_axis_of_rl_steps(stage: Stage, rl_step: int) -> None:
    run = run_of(dapo={"steps": 10})
    iteration = 0 if stage is Stage.EVALUATING_BASE else 2
    assert trainer_config(run, iteration, stage)["run"]["rl_step"] == rl_step


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_the_trackers_secrets_are_mounted_read_only_in_every_phase_pod(launcher: str) -> None:
    run = run_of(tracking=TRACKERS, resources={"launcher": launcher})
    for stage in (Stage.EXPLORING, Stage.FILTERING):
        child = manifest(stage, run)
        if child["kind"] == "TrainJob":
            pod, env = trainjob_pod_patch(child)["spec"], child["spec"]["trainer"]["env"]
            [container] = pod["containers"]
        else:
            pod = (
                master_pod(child) if child["kind"] == "PyTorchJob" else child["spec"]["template"]
            )["spec"]
            [container] = pod["containers"]
            env = container["env"]
        sources = [{"secret": {"name": "mlflow-token"}}, {"secret": {"name": "wandb-key"}}]
        assert {"name": "tracking", "projected": {"sources": sources}} in pod["volumes"]
        mount = {"name": "tracking", "mountPath": TRACKING_CREDENTIALS, "readOnly": True}
        assert mount in container["volumeMounts"]
        assert {"name": CREDENTIALS_DIR_ENV, "value": TRACKING_CREDENTIALS} in env

"""spec.resources.progressTimeout and collectiveTimeout on the phase pods and configs."""

from __future__ import annotations

from typing import Any

import pytest
from rloop_operator.api import parse_spec, parse_status
from rloop_operator.children import child_name
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest, trainer_config
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView

from tests.unit.operator.world import spec_dict

SETTINGS = ManifestSettings(trainer_image="registry.local/rloop-trainer:test")


def run_of(**resources: Any) -> RunView:
    spec = parse_spec(spec_dict(resources=resources))
    return RunView("demo", "team-a", "uid-9", 1, spec, parse_status({}))


def container(run: RunView, stage: Stage) -> dict[str, Any]:
    name = child_name(run.name, 0, stage, 0)
    job = child_manifest(run, CreateChild(name, 0, stage), SETTINGS)
    replicas = job["spec"].get("pytorchReplicaSpecs")
    template = replicas["Master"]["template"] if replicas else job["spec"]["template"]
    [only] = template["spec"]["containers"]
    return dict(only)


@pytest.mark.parametrize("stage", [Stage.EXPLORING, Stage.FILTERING, Stage.CONSOLIDATING])
def test_every_phase_container_is_probed_for_progress_on_its_heartbeat(stage: Stage) -> None:
    phase = container(run_of(progressTimeout="20m"), stage)
    assert phase["livenessProbe"] == {
        "exec": {"command": ["rloop-trainer-probe", "--stalled-after", "1200"]},
        "periodSeconds": 60,
        "timeoutSeconds": 30,
        "failureThreshold": 2,
    }
    env = {var["name"]: var.get("value") for var in phase["env"]}
    assert env["RLOOP_PROGRESS_PATH"] == "/scratch/progress.json"


def test_the_probe_comes_every_tenth_of_a_short_timeout_and_not_at_all_for_zero() -> None:
    assert (
        container(run_of(progressTimeout="5m"), Stage.EXPLORING)["livenessProbe"]["periodSeconds"]
        == 30
    )
    assert "livenessProbe" not in container(run_of(progressTimeout="0"), Stage.EXPLORING)


def test_the_progress_timeout_is_an_hour_and_the_collective_timeout_30_minutes_by_default() -> None:
    run = run_of()
    probe = container(run, Stage.EXPLORING)["livenessProbe"]
    assert probe["exec"]["command"][-1] == "3600"
    assert trainer_config(run, 0, Stage.EXPLORING)["collective_timeout_seconds"] == 1800


@pytest.mark.parametrize("stage", [Stage.EXPLORING, Stage.CONSOLIDATING])
def test_the_collective_timeout_reaches_both_training_phases(stage: Stage) -> None:
    config = trainer_config(run_of(collectiveTimeout="1h30m"), 0, stage)
    assert config["collective_timeout_seconds"] == 5400

"""The contract between the operator and the trainer: every phase config the
operator renders is accepted by the trainer's phase config models."""

from __future__ import annotations

import pytest
from rloop_operator.api import Stage
from rloop_operator.manifests import PHASE_OF_STAGE
from rloop_operator.phase_config import phase_config
from rloop_trainer.config import PHASE_CONFIGS
from rloop_trainer.termination import PATH_ENV

from tests.unit.operator.test_manifests import manifest, master_pod, run_of

VALIDATION = {
    "train": "s3://b/t",
    "validation": [{"name": "v", "uri": "s3://b/v", "samples": 4, "passAt": [1, 4]}],
}


@pytest.mark.parametrize("mode", ["rloop", "vanilla"])
@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_trainer_parses_every_rendered_phase_config(stage: Stage, mode: str) -> None:
    run = run_of(mode=mode, data=VALIDATION, dapo={"dualClip": 3.0})
    rendered = phase_config(run, 1, stage)
    parsed = PHASE_CONFIGS[PHASE_OF_STAGE[stage]].model_validate(rendered)
    assert parsed.model_dump(exclude_unset=True).keys() == rendered.keys()


def test_filter_and_eval_pods_tell_the_trainer_where_to_leave_the_report() -> None:
    run = run_of(data=VALIDATION)
    for stage in (Stage.FILTERING, Stage.EVALUATING):
        container = manifest(stage, run)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[PATH_ENV] == container["terminationMessagePath"]
    training = master_pod(manifest(Stage.EXPLORING, run))["spec"]["containers"][0]
    assert PATH_ENV not in {e["name"] for e in training["env"]}

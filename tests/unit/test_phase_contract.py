"""The contract between the operator and the trainer: every phase config the operator
renders is accepted by the trainer's phase config models, every field of the sections the
trainer reads (rloop_contract.sections) reaches the stages that read it, and the trainer's
defaults are the generated CRD's. A new field of a section needs no change here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from rloop_contract.sections import (
    DapoSection,
    EvalSection,
    FilterSection,
    RewardSection,
    RftSection,
)
from rloop_operator.api import parse_spec
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import trainer_config
from rloop_operator.stages import stage_info
from rloop_trainer.config import (
    DapoPhaseConfig,
    EvalPhaseConfig,
    FilterPhaseConfig,
    RftPhaseConfig,
    parse_phase_config,
)
from rloop_trainer.termination import PATH_ENV

from tests.unit.operator.test_manifests import manifest, master_pod, run_of
from tests.unit.operator.world import spec_dict

VALIDATION = {
    "train": "s3://b/t",
    "validation": [{"name": "v", "uri": "s3://b/v", "samples": 4, "passAt": [1, 4]}],
}
CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "rlooprun.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


# The stages whose trainer reads each spec section, and where in its phase config: at the top
# level (None) or nested under a key. spec.filter also holds the filter pod's resources,
# which are the operator's alone.
SECTIONS: dict[str, tuple[type[BaseModel], list[tuple[Stage, str | None]]]] = {
    "dapo": (DapoSection, [(Stage.EXPLORING, None)]),
    "filter": (FilterSection, [(Stage.FILTERING, None)]),
    "rft": (RftSection, [(Stage.CONSOLIDATING, None)]),
    "eval": (EvalSection, [(Stage.EVALUATING, None), (Stage.EVALUATING_BASE, None)]),
    "reward": (RewardSection, [(Stage.EXPLORING, "reward"), (Stage.EVALUATING, "reward")]),
}
# Settings of one section that another stage reads too: spec.<section>.<field> -> where.
SHARED: dict[str, list[tuple[Stage, str]]] = {
    "dapo.maxPromptTokens": [(Stage.EVALUATING, "max_prompt_tokens")],
    "dapo.engine": [(Stage.EVALUATING, "engine")],
}
# A valid spec in which many fields differ from their defaults.
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "dapo": {
        "steps": 7, "groupSize": 4, "promptsPerStep": 6, "maxPromptTokens": 33,
        "maxResponseTokens": 99, "temperature": 0.7, "topP": 0.9, "clipLow": 0.1,
        "clipHigh": 0.3, "dualClip": 5.0, "lr": 3e-6, "warmupSteps": 4, "weightDecay": 0.02,
        "gradClip": 0.5, "microBatch": 3, "zeroStage": 3, "dynamicSampling": False,
        "oversample": 2, "maxGenerationRounds": 4, "updatesPerStep": 3, "overlongBuffer": 9,
        "overlongPenalty": 0.5, "overlongFiltering": True, "checkpointEvery": 3, "engine": "hf",
    },
    "filter": {"hardThreshold": 0.2, "maxPerPrompt": 3, "dedupe": False, "cpu": "3"},
    "rft": {
        "epochs": 2, "lr": 2e-5, "warmupSteps": 5, "weightDecay": 0.2, "microBatch": 2,
        "batchSize": 8, "maxSeqTokens": 512, "zeroStage": 1,
    },
    "reward": {"format": "answer-line"},
    "eval": {"maxResponseTokens": 77, "temperature": 0.6, "topP": 0.95},
}  # fmt: skip
TRAINER_MODELS: dict[Stage, type[BaseModel]] = {
    Stage.EXPLORING: DapoPhaseConfig,
    Stage.FILTERING: FilterPhaseConfig,
    Stage.CONSOLIDATING: RftPhaseConfig,
    Stage.EVALUATING: EvalPhaseConfig,
}
FIELDS = [
    (section, name, info)
    for section, (model, _) in SECTIONS.items()
    for name, info in model.model_fields.items()
]


def _dotted(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


def _spec_value(section: str, name: str) -> Any:
    return parse_spec(spec_dict(data=VALIDATION, **NON_DEFAULT)).model_dump()[section][name]


@pytest.mark.parametrize("mode", ["rloop", "vanilla"])
@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_trainer_parses_every_rendered_phase_config(stage: Stage, mode: str) -> None:
    run = run_of(mode=mode, data=VALIDATION, **NON_DEFAULT)
    rendered = trainer_config(run, 1, stage)
    parsed = parse_phase_config(stage_info(stage).phase, json.dumps(rendered))
    assert parsed.model_dump(exclude_unset=True).keys() == rendered.keys()


@pytest.mark.parametrize(("section", "name", "info"), FIELDS, ids=lambda v: str(v)[:30])
def test_every_field_of_a_section_reaches_the_trainers_that_read_it(
    section: str, name: str, info: Any
) -> None:
    run = run_of(data=VALIDATION, **NON_DEFAULT)
    _, readers = SECTIONS[section]
    for stage, under in readers:
        key = name if under is None else f"{under}.{name}"
        assert _dotted(trainer_config(run, 1, stage), key) == _spec_value(section, name), key
    for stage, key in SHARED.get(f"{section}.{info.alias}", []):
        assert trainer_config(run, 1, stage)[key] == _spec_value(section, name), key


@pytest.mark.parametrize(("section", "name", "info"), FIELDS, ids=lambda v: str(v)[:30])
def test_the_trainers_defaults_are_the_crds(section: str, name: str, info: Any) -> None:
    crd_default = SPEC_SCHEMA["properties"][section]["properties"][info.alias]["default"]
    _, readers = SECTIONS[section]
    for stage, under in readers:
        model = TRAINER_MODELS.get(stage)
        if model is None or under is not None:
            continue  # the base evaluation's model is the evaluation's; nested: below
        assert model.model_fields[name].get_default() == crd_default, name
    for stage, key in SHARED.get(f"{section}.{info.alias}", []):
        assert TRAINER_MODELS[stage].model_fields[key].get_default() == crd_default, key


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_every_phase_pod_tells_the_trainer_where_to_leave_its_report_or_failure(
    stage: Stage,
) -> None:
    child = manifest(stage, run_of(data=VALIDATION))
    pod = master_pod(child) if child["kind"] == "PyTorchJob" else child["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[PATH_ENV] == container["terminationMessagePath"]

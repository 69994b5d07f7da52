"""The contract between the operator and the trainer: every phase config the operator
renders is accepted by the trainer's phase config models, every field of the DAPO, RFT,
reward and eval specs reaches the trainer (or is said to be operator-only), and the
trainer's defaults are the CRD's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from rloop_operator.api import DapoSpec, EvalSpec, RewardSpec, RftSpec, Stage
from rloop_operator.phase_config import phase_config
from rloop_operator.stages import stage_info
from rloop_trainer.config import (
    PHASE_CONFIGS,
    DapoPhaseConfig,
    EvalPhaseConfig,
    RftPhaseConfig,
)
from rloop_trainer.termination import PATH_ENV

from tests.unit.operator.test_manifests import manifest, master_pod, run_of

VALIDATION = {
    "train": "s3://b/t",
    "validation": [{"name": "v", "uri": "s3://b/v", "samples": 4, "passAt": [1, 4]}],
}
CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "rlooprun.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


# spec.<section>.<field> -> (stage, key of that stage's phase config, dotted when nested)
CONTRACT: dict[str, list[tuple[Stage, str]]] = {
    "dapo.steps": [(Stage.EXPLORING, "steps")],
    "dapo.groupSize": [(Stage.EXPLORING, "group_size")],
    "dapo.promptsPerStep": [(Stage.EXPLORING, "prompts_per_step")],
    "dapo.maxPromptTokens": [(Stage.EXPLORING, "max_prompt_tokens")],
    "dapo.maxResponseTokens": [(Stage.EXPLORING, "max_response_tokens")],
    "dapo.temperature": [(Stage.EXPLORING, "temperature")],
    "dapo.topP": [(Stage.EXPLORING, "top_p")],
    "dapo.clipLow": [(Stage.EXPLORING, "clip_low")],
    "dapo.clipHigh": [(Stage.EXPLORING, "clip_high")],
    "dapo.dualClip": [(Stage.EXPLORING, "dual_clip")],
    "dapo.lr": [(Stage.EXPLORING, "training.lr")],
    "dapo.warmupSteps": [(Stage.EXPLORING, "training.warmup_steps")],
    "dapo.weightDecay": [(Stage.EXPLORING, "training.weight_decay")],
    "dapo.gradClip": [(Stage.EXPLORING, "training.grad_clip")],
    "dapo.microBatch": [(Stage.EXPLORING, "training.micro_batch")],
    "dapo.zeroStage": [(Stage.EXPLORING, "training.zero_stage")],
    "dapo.dynamicSampling": [(Stage.EXPLORING, "dynamic_sampling")],
    "dapo.oversample": [(Stage.EXPLORING, "oversample")],
    "dapo.maxGenerationRounds": [(Stage.EXPLORING, "max_generation_rounds")],
    "dapo.updatesPerStep": [(Stage.EXPLORING, "updates_per_step")],
    "dapo.overlongBuffer": [(Stage.EXPLORING, "overlong_buffer")],
    "dapo.overlongPenalty": [(Stage.EXPLORING, "overlong_penalty")],
    "dapo.overlongFiltering": [(Stage.EXPLORING, "overlong_filtering")],
    "dapo.checkpointEvery": [(Stage.EXPLORING, "checkpoint_every")],
    "dapo.engine": [(Stage.EXPLORING, "engine"), (Stage.EVALUATING, "engine")],
    "rft.epochs": [(Stage.CONSOLIDATING, "epochs")],
    "rft.lr": [(Stage.CONSOLIDATING, "training.lr")],
    "rft.warmupSteps": [(Stage.CONSOLIDATING, "training.warmup_steps")],
    "rft.weightDecay": [(Stage.CONSOLIDATING, "training.weight_decay")],
    "rft.microBatch": [(Stage.CONSOLIDATING, "training.micro_batch")],
    "rft.batchSize": [(Stage.CONSOLIDATING, "batch_size")],
    "rft.maxSeqTokens": [(Stage.CONSOLIDATING, "max_seq_tokens")],
    "rft.zeroStage": [(Stage.CONSOLIDATING, "training.zero_stage")],
    "reward.format": [(Stage.EXPLORING, "reward_format"), (Stage.EVALUATING, "reward_format")],
    "eval.maxResponseTokens": [(Stage.EVALUATING, "max_response_tokens")],
    "eval.temperature": [(Stage.EVALUATING, "temperature")],
    "eval.topP": [(Stage.EVALUATING, "top_p")],
}
# Fields the operator acts on itself and the trainer never sees (none so far).
OPERATOR_ONLY: set[str] = set()
# A valid spec in which every field of CONTRACT differs from its default.
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "dapo": {
        "steps": 7,
        "groupSize": 4,
        "promptsPerStep": 6,
        "maxPromptTokens": 33,
        "maxResponseTokens": 99,
        "temperature": 0.7,
        "topP": 0.9,
        "clipLow": 0.1,
        "clipHigh": 0.3,
        "dualClip": 5.0,
        "lr": 3e-6,
        "warmupSteps": 4,
        "weightDecay": 0.02,
        "gradClip": 0.5,
        "microBatch": 3,
        "zeroStage": 3,
        "dynamicSampling": False,
        "oversample": 2,
        "maxGenerationRounds": 4,
        "updatesPerStep": 3,
        "overlongBuffer": 9,
        "overlongPenalty": 0.5,
        "overlongFiltering": True,
        "checkpointEvery": 3,
        "engine": "hf",
    },
    "rft": {
        "epochs": 2,
        "lr": 2e-5,
        "warmupSteps": 5,
        "weightDecay": 0.2,
        "microBatch": 2,
        "batchSize": 8,
        "maxSeqTokens": 512,
        "zeroStage": 1,
    },
    "reward": {"format": "answer-line"},
    "eval": {"maxResponseTokens": 77, "temperature": 0.6, "topP": 0.95},
}
SECTIONS: dict[str, type[BaseModel]] = {
    "dapo": DapoSpec,
    "rft": RftSpec,
    "reward": RewardSpec,
    "eval": EvalSpec,
}
TRAINER_MODELS: dict[Stage, type[BaseModel]] = {
    Stage.EXPLORING: DapoPhaseConfig,
    Stage.CONSOLIDATING: RftPhaseConfig,
    Stage.EVALUATING: EvalPhaseConfig,
}


def _dotted(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


def _trainer_default(model: type[BaseModel], key: str) -> Any:
    first, *rest = key.split(".")
    value = model.model_fields[first].get_default(call_default_factory=True)
    for part in rest:
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("mode", ["rloop", "vanilla"])
@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_trainer_parses_every_rendered_phase_config(stage: Stage, mode: str) -> None:
    run = run_of(mode=mode, data=VALIDATION, **NON_DEFAULT)
    rendered = phase_config(run, 1, stage)
    parsed = PHASE_CONFIGS[stage_info(stage).phase].model_validate(rendered)
    assert parsed.model_dump(exclude_unset=True).keys() == rendered.keys()


def test_every_spec_field_reaches_the_trainer_or_is_operator_only() -> None:
    declared = {
        f"{section}.{field.alias}"
        for section, model in SECTIONS.items()
        for field in model.model_fields.values()
    }
    assert declared - OPERATOR_ONLY == set(CONTRACT)


@pytest.mark.parametrize("api_field", sorted(CONTRACT))
def test_a_spec_value_lands_where_the_contract_says(api_field: str) -> None:
    section, name = api_field.split(".")
    run = run_of(data=VALIDATION, **NON_DEFAULT)
    for stage, key in CONTRACT[api_field]:
        assert _dotted(phase_config(run, 1, stage), key) == NON_DEFAULT[section][name], key


@pytest.mark.parametrize("api_field", sorted(CONTRACT))
def test_the_trainers_defaults_are_the_crds(api_field: str) -> None:
    section, name = api_field.split(".")
    crd_default = SPEC_SCHEMA["properties"][section]["properties"][name]["default"]
    for stage, key in CONTRACT[api_field]:
        assert _trainer_default(TRAINER_MODELS[stage], key) == crd_default, key


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.NONE])
def test_every_phase_pod_tells_the_trainer_where_to_leave_its_report_or_failure(
    stage: Stage,
) -> None:
    child = manifest(stage, run_of(data=VALIDATION))
    pod = master_pod(child) if child["kind"] == "PyTorchJob" else child["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[PATH_ENV] == container["terminationMessagePath"]

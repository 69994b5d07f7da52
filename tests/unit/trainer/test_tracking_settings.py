"""spec.tracking and the tracking part of the phase configs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from rloop_contract.tracking import TrackingSection
from rloop_trainer.config import (
    PHASE_CONFIGS,
    DapoPhaseConfig,
    PhaseConfigError,
    parse_phase_config,
)

TRACKING: dict[str, Any] = {
    "mlflow": {"tracking_uri": "http://mlflow.mlflow:5000", "experiment_name": "math"},
    "tensorboard": True,
    "wandb": {"project": "rloop", "entity": "team", "mode": "offline"},
    "credentials_secrets": ["mlflow-token", "wandb-key"],
    "files_uri": "s3://bucket/runs/ns/run/uid/tracking",
    "run_spec": {"mode": "rloop", "dapo": {"steps": 4}},
    "selection_metric": "heldout/avg@8",
}
RFT: dict[str, Any] = {
    "policy_uri": "s3://b/p",
    "expert_uri": "s3://b/e",
    "output_uri": "s3://b/o",
    "checkpoint_uri": "s3://b/c",
}


def test_no_tracker_is_the_default() -> None:
    assert TrackingSection().backends == []


def test_several_trackers_may_be_on_at_once() -> None:
    settings = TrackingSection.model_validate(
        {key: TRACKING[key] for key in ("mlflow", "tensorboard", "wandb")}
    )
    assert settings.backends == ["mlflow", "tensorboard", "wandb"]
    assert settings.wandb is not None and settings.wandb.mode == "offline"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"mlflow": {"tracking_uri": "mlflow.local:5000"}}, "mlflow.tracking_uri"),
        ({"mlflow": {}}, "mlflow.tracking_uri"),
        ({"wandb": {"project": "a/b"}}, "wandb.project"),
        ({"wandb": {"project": "p", "mode": "disabled"}}, "wandb.mode"),
        ({"credentials_secrets": ["Not_A_Secret"]}, "credentials_secrets.0"),
        ({"tensorboard": {"enabled": True}}, "tensorboard"),
        ({"comet": {}}, "comet"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TrackingSection.model_validate(settings, by_alias=False, by_name=True)
    assert field in {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}


def test_settings_are_frozen() -> None:
    settings = TrackingSection(tensorboard=True)
    with pytest.raises(ValidationError):
        settings.tensorboard = False  # type: ignore[misc]


@pytest.mark.parametrize("phase", sorted(PHASE_CONFIGS))
def test_every_phase_config_takes_the_tracking_section_or_none(phase: str) -> None:
    assert PHASE_CONFIGS[phase].model_fields["tracking"].default is None


def test_the_phase_tracking_section_parses_with_the_run_axis() -> None:
    raw = RFT | {"tracking": TRACKING, "run": {"name": "r", "iteration": 1, "rl_step": 8}}
    config = parse_phase_config("rft", json.dumps(raw))
    assert config.tracking is not None
    assert config.tracking.backends == ["mlflow", "tensorboard", "wandb"]
    assert config.tracking.run_spec == TRACKING["run_spec"]
    assert config.run.rl_step == 8


def test_a_phase_tracking_section_without_its_files_uri_names_the_key() -> None:
    tracking = {k: v for k, v in TRACKING.items() if k != "files_uri"}
    with pytest.raises(PhaseConfigError, match=r"tracking\.files_uri"):
        parse_phase_config("rft", json.dumps(RFT | {"tracking": tracking}))


DAPO: dict[str, Any] = {
    "policy_uri": "s3://b/p",
    "train_data_uri": "s3://b/t",
    "trajectories_uri": "s3://b/r/t",
    "rl_policy_uri": "s3://b/r/p",
    "output_uri": "s3://b/r",
    "steps": 4,
}


@pytest.mark.parametrize(
    ("iteration", "window", "expected"),
    [
        # An RLoop iteration's DAPO numbers its steps 1..4 again; rl_step places them.
        (0, None, [1, 2, 3, 4]),
        (2, None, [9, 10, 11, 12]),
        # A vanilla window numbers the run's steps already: rl_step = window.first_step.
        (2, {"first_step": 8, "run_steps": 12, "previous_uri": "s3://b/w1"}, [9, 10, 11, 12]),
    ],
)
def test_dapo_steps_land_on_the_runs_rl_steps_in_both_modes(
    iteration: int, window: dict[str, Any] | None, expected: list[int]
) -> None:
    run = {"iteration": iteration, "rl_step": 4 * iteration}
    config = parse_phase_config("dapo", json.dumps(DAPO | {"run": run, "window": window}))
    assert isinstance(config, DapoPhaseConfig)
    steps = range(config.first_step + 1, config.last_step + 1)
    assert [config.rl_step_of(step) for step in steps] == expected

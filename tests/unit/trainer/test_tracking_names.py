"""What the phases log to the trackers, under which names."""

from __future__ import annotations

import pytest
from rloop_trainer.tracking.names import (
    DAPO_STEP_NAMES,
    at_spelled_out,
    best_evaluation,
    dapo_step_metrics,
    epoch_losses,
    flatten_params,
    report_metrics,
    validation_metrics,
)

# The names the issue asks for, as verl's DAPO trainer logs them.
VERL_DAPO_NAMES = {
    "critic/score/mean",
    "actor/entropy",
    "actor/pg_loss",
    "actor/pg_clipfrac",
    "actor/grad_norm",
    "response_length/mean",
    "response_length/clip_ratio",
    "train/num_gen_batches",
    "perf/throughput",
}


def test_a_dapo_step_carries_verls_names_and_keeps_the_rest_under_rloop() -> None:
    record = {key: float(i) for i, key in enumerate(DAPO_STEP_NAMES)}
    record |= {"step": 7, "accuracy": 0.25, "kept_groups": 4}

    metrics = dapo_step_metrics(record)

    assert metrics.keys() >= VERL_DAPO_NAMES
    assert {name for name in metrics if name.startswith("timing_s/")} == {
        "timing_s/step",
        "timing_s/gen",
        "timing_s/dump_rollout_generations",
        "timing_s/update_actor",
        "timing_s/update_weights",
    }
    assert metrics["actor/pg_loss"] == record["pg_loss"]
    assert metrics["rloop/accuracy"] == 0.25 and metrics["rloop/kept_groups"] == 4
    assert "step" not in metrics and "rloop/step" not in metrics


def test_only_finite_numbers_reach_the_trackers() -> None:
    metrics = dapo_step_metrics({"step": 1, "grad_norm": float("nan"), "skipped": True, "x": "y"})
    assert metrics == {}


def test_every_verl_name_maps_from_one_key() -> None:
    assert len(set(DAPO_STEP_NAMES.values())) == len(DAPO_STEP_NAMES)


def test_validation_metrics_use_the_status_names_per_set() -> None:
    sets = {
        "heldout": {"avg@n": 0.25, "pass@k": {"1": 0.25, "8": 0.75}, "problems": 4, "samples": 8},
        "train": {"avg@n": 0.5, "pass@k": {"1": 0.5}, "problems": 2, "samples": 2},
    }
    assert validation_metrics(sets) == {
        "val/heldout/avg@8": 0.25,
        "val/heldout/pass@1": 0.25,
        "val/heldout/pass@8": 0.75,
        "val/train/avg@2": 0.5,
        "val/train/pass@1": 0.5,
    }


POLICIES = [
    {"label": "base", "iteration": 0, "rl_steps": 0},
    {"label": "iter 1", "iteration": 1, "rl_steps": 4},
    {"label": "iter 2", "iteration": 2, "rl_steps": 8},
]


def test_the_best_evaluation_is_the_highest_and_the_earliest_among_equals() -> None:
    points = [[0, 0.2, "base"], [4, 0.5, "iter 1"], [8, 0.5, "iter 2"]]
    validation = {"heldout": {"avg@8": points, "pass@8": [[0, 0.9, "base"]]}}

    best = best_evaluation(validation, POLICIES, "heldout/avg@8")

    assert best == {"best/iteration": 1.0, "best/rl_step": 4.0, "best/heldout/avg@8": 0.5}


def test_no_best_evaluation_before_one_has_the_metric() -> None:
    assert best_evaluation({"heldout": {"avg@8": []}}, POLICIES, "heldout/avg@8") == {}
    assert best_evaluation({}, POLICIES, "other/pass@1") == {}


def test_epoch_losses_are_the_means_of_their_steps() -> None:
    records = [
        {"step": 1, "epoch": 0, "loss": 4.0},
        {"step": 2, "epoch": 0, "loss": 2.0},
        {"step": 3, "epoch": 1, "loss": 1.0},
    ]
    expected: dict[int, float] = {}
    for epoch in {int(r["epoch"]) for r in records}:
        losses = [r["loss"] for r in records if r["epoch"] == epoch]
        expected[epoch + 1] = sum(losses) / len(losses)

    assert epoch_losses(records) == expected == {1: 3.0, 2: 1.0}


def test_report_metrics_keep_the_numbers_under_the_phase() -> None:
    report = {"rollouts": 64, "hard_prompts": 3, "threshold": 0.3, "uri": "s3://x", "ok": True}
    assert report_metrics("filter", report) == {
        "filter/rollouts": 64.0,
        "filter/hard_prompts": 3.0,
        "filter/threshold": 0.3,
    }


def test_parameters_are_flat_dotted_and_json() -> None:
    spec = {
        "mode": "rloop",
        "dapo": {"steps": 4, "lr": 1e-4},
        "data": {"validation": [{"name": "heldout", "passAt": [1, 8]}]},
        "selection": {"validationSet": None},
        "note": "x" * 7000,
    }
    params = flatten_params(spec)
    assert params["mode"] == "rloop"
    assert params["dapo.steps"] == "4" and params["dapo.lr"] == "0.0001"
    assert params["data.validation.0.name"] == "heldout"
    assert params["data.validation.0.passAt"] == "[1, 8]"
    assert params["selection.validationSet"] == "null"
    assert len(params["note"]) == 6000


@pytest.mark.parametrize(
    ("name", "spelled"),
    [("val/heldout/pass@8", "val/heldout/pass_at_8"), ("actor/pg_loss", "actor/pg_loss")],
)
def test_names_for_mlflow_and_tensorboard_spell_at_out(name: str, spelled: str) -> None:
    assert at_spelled_out(name) == spelled

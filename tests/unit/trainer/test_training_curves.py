"""Curves along the run's RL steps from DAPO metrics, read defensively."""

from __future__ import annotations

from rloop_trainer.training_curves import curve, parse_metrics, training_curves


def test_phases_are_placed_one_after_the_other_on_the_run_s_steps() -> None:
    first = [{"step": 1, "grad_norm": 0.5}, {"step": 2, "grad_norm": 0.7}]
    second = [{"step": 1, "grad_norm": 0.2}, {"step": 2, "grad_norm": 0.1}]

    points = curve([(0, first), (2, second)], ["grad_norm"])

    assert points == [(1, 0.5), (2, 0.7), (3, 0.2), (4, 0.1)]


def test_entropy_is_read_under_either_name_and_bad_values_are_skipped() -> None:
    records = [
        {"step": 1, "token_entropy": 1.5},
        {"step": 2, "entropy": 1.25},
        {"step": 3, "token_entropy": "high"},
        {"step": 4, "token_entropy": float("nan")},
        {"token_entropy": 1.0},
        {"step": 5, "token_entropy": True},
    ]

    curves = training_curves([(10, records)])

    assert curves == {"token_entropy": [(11, 1.5), (12, 1.25)]}


def test_lines_that_are_not_json_objects_are_dropped() -> None:
    text = '{"step": 1, "accuracy": 0.25}\n\nnot json\n[1, 2]\n{"step": 2, "accuracy": 0.5}\n'

    records = parse_metrics(text)

    assert training_curves([(0, records)]) == {"accuracy": [(1, 0.25), (2, 0.5)]}

"""Curves along the run's RL steps from the DAPO phases' metrics.jsonl (the paper's
Fig. 4 and Fig. 6: training accuracy, token entropy, gradient norm).

Read defensively: a line that is not a JSON object, a missing key or a non-number
value is skipped, so a trainer that logs more, fewer or renamed keys still gets the
curves it has.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

Records = Sequence[Mapping[str, object]]
Curve = list[tuple[int, float]]

# Curve name -> the metrics keys that carry it, first found wins.
CURVE_KEYS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "reward": ("reward",),
    "token_entropy": ("token_entropy", "entropy"),
    "grad_norm": ("grad_norm",),
}


def parse_metrics(text: str) -> list[dict[str, object]]:
    """The JSON objects of a metrics.jsonl text, one per line; other lines are dropped."""
    records: list[dict[str, object]] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def curve(phases: Sequence[tuple[int, Records]], keys: Sequence[str]) -> Curve:
    """(first RL step of the phase, its records) per phase -> (run RL step, value) points
    for records with a `step` and a number under the first of `keys` present."""
    points: Curve = []
    for first_step, records in phases:
        for record in records:
            step = _number(record.get("step"))
            key = next((k for k in keys if k in record), None)
            value = None if key is None else _number(record[key])
            if step is not None and value is not None:
                points.append((first_step + int(step), value))
    return sorted(points)


def training_curves(phases: Sequence[tuple[int, Records]]) -> dict[str, Curve]:
    """Every curve of CURVE_KEYS that has at least one point."""
    curves = {name: curve(phases, keys) for name, keys in CURVE_KEYS.items()}
    return {name: points for name, points in curves.items() if points}

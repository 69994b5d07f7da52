"""What the phases log to the trackers, under which names. Pure.

Per DAPO step the names are verl's (verl/trainer/ppo/metric_utils.py and its DAPO
trainer), so that dashboards built for verl runs carry over; the step's other figures go
under rloop/. Evaluations log under val/<set>/ the names status.iterations[].metrics uses
(avg@n, pass@k), and the best evaluation so far under best/.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

# metrics.jsonl key (dapo.step_metrics, dapo_update) -> verl's name. Where ours differs:
# actor/entropy is the token mean over the loss tokens in the update's forward passes (verl
# takes it from the old-log-prob pass); actor/pg_clipfrac counts the dual-clip tokens too
# (verl logs those apart as pg_clipfrac_lower); timing_s/step ends with the weight sync,
# before any checkpoint.
DAPO_STEP_NAMES: dict[str, str] = {
    "kept_reward": "critic/score/mean",
    "token_entropy": "actor/entropy",
    "pg_loss": "actor/pg_loss",
    "clip_fraction": "actor/pg_clipfrac",
    "grad_norm": "actor/grad_norm",
    "lr": "actor/lr",
    "kept_response_length": "response_length/mean",
    "kept_truncated_fraction": "response_length/clip_ratio",
    "generation_rounds": "train/num_gen_batches",
    "kept_tokens": "perf/total_num_tokens",
    "kept_tokens_per_rank_s": "perf/throughput",
    "time_step_s": "timing_s/step",
    "time_rollout_s": "timing_s/gen",
    "time_write_s": "timing_s/dump_rollout_generations",
    "time_train_s": "timing_s/update_actor",
    "time_sync_s": "timing_s/update_weights",
}
OWN_PREFIX = "rloop/"
# MLflow's longest parameter value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
PARAM_VALUE_CHARS = 6000


def at_spelled_out(name: str) -> str:
    """The name for a tracker that keeps only letters, digits and _-./ (MLflow, TensorBoard):
    pass@8 becomes pass_at_8, as verl's MLflow logger writes it."""
    return name.replace("@", "_at_")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def dapo_step_metrics(record: Mapping[str, object]) -> dict[str, float]:
    """A metrics.jsonl line as the trackers get it: every finite number but the step,
    under verl's name where verl has one, else under rloop/."""
    metrics = {}
    for key, value in record.items():
        number = _number(value)
        if key != "step" and number is not None:
            metrics[DAPO_STEP_NAMES.get(key, OWN_PREFIX + key)] = number
    return metrics


def report_metrics(prefix: str, report: Mapping[str, object]) -> dict[str, float]:
    """The finite numbers of a phase report (the filter's, the RFT marker's) under
    `prefix`/."""
    numbers = {key: _number(value) for key, value in report.items()}
    return {f"{prefix}/{key}": value for key, value in numbers.items() if value is not None}


def validation_metrics(sets: Mapping[str, Any]) -> dict[str, float]:
    """val/<set>/avg@<n> and val/<set>/pass@<k> from an eval report's "sets"."""
    metrics: dict[str, float] = {}
    for name, summary in sets.items():
        metrics[f"val/{name}/avg@{summary['samples']}"] = float(summary["avg@n"])
        for k, value in summary["pass@k"].items():
            metrics[f"val/{name}/pass@{k}"] = float(value)
    return metrics


def best_evaluation(
    validation: Mapping[str, Mapping[str, Sequence[Sequence[Any]]]],
    policies: Sequence[Mapping[str, Any]],
    selection_metric: str,
) -> dict[str, float]:
    """The evaluation with the highest `selection_metric` (<set>/<metric>), the earliest
    among equals as status.best takes it: best/iteration, best/rl_step and best/<metric>.
    `validation` is analysis.json's {set: {metric: [[rl_steps, value, label], ...]}} and
    `policies` its evaluated policies (label, iteration, ...). Empty while no evaluation
    has the metric."""
    set_name, _, metric = selection_metric.partition("/")
    points = validation.get(set_name, {}).get(metric, [])
    if not points:
        return {}
    rl_steps, value, label = max(points, key=lambda point: point[1])
    iteration = next(p["iteration"] for p in policies if p["label"] == label)
    return {
        "best/iteration": float(iteration),
        "best/rl_step": float(rl_steps),
        f"best/{selection_metric}": float(value),
    }


def epoch_losses(records: Sequence[Mapping[str, float]]) -> dict[int, float]:
    """{epoch (from 1): mean loss of its optimizer steps} from the RFT phase's metrics."""
    by_epoch: dict[int, list[float]] = {}
    for record in records:
        by_epoch.setdefault(int(record["epoch"]) + 1, []).append(record["loss"])
    return {epoch: sum(losses) / len(losses) for epoch, losses in sorted(by_epoch.items())}


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Parameters as the trackers take them: one dotted key per leaf (list items by
    index), values as JSON text, cut to the length MLflow keeps."""
    params: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            params |= flatten_params(value, f"{name}.")
        elif isinstance(value, list) and value and any(isinstance(v, Mapping) for v in value):
            params |= flatten_params({str(i): v for i, v in enumerate(value)}, f"{name}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            params[name] = text[:PARAM_VALUE_CHARS]
    return params

"""The run-level analysis that each evaluation refreshes (DESIGN.md §6; the paper's
Fig. 2, 4, 5 and 6), from the URIs the operator lists in RunAnalysisConfig.

Reads every listed evaluation's samples.parquet and report.json and every DAPO
phase's metrics.jsonl; writes under `output_uri`:

    analysis.json                    the run's evaluated policies (label, iteration, RL
                                     steps, eval URI) and every number drawn below
    learning-forgetting-<set>.png    learning and forgetting matrices (policy_comparison.py)
    similarity-<set>.png             pairwise bigram-Jaccard similarity of the policies'
                                     responses (Appendix A; the diagonal: each one's own)
    training.png                     train accuracy, token entropy, grad norm per RL step
    validation.png                   each set's avg@n and pass@k per evaluated policy

An evaluation whose samples or report cannot be read (say, one made before samples were
recorded) is left out of what needs it, with a warning. analysis.json is written last,
so the pictures it lists exist.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rloop_trainer import store
from rloop_trainer.config import EvaluatedPolicy, RunAnalysisConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.eval_samples import ProblemSamples, read_samples
from rloop_trainer.passk import ProblemOutcome, pass_at_k
from rloop_trainer.policy_comparison import (
    FloatMatrix,
    bigram_similarity_matrix,
    forgetting_matrix,
    forgetting_rate,
    learning_matrix,
    solved,
)
from rloop_trainer.training_curves import parse_metrics, training_curves

log = logging.getLogger(__name__)

ANALYSIS_FILE = "analysis.json"
SOLVED_MEANS = "at least one of the policy's samples of the problem is verified correct"


@dataclass(frozen=True)
class LoadedEvaluation:
    policy: EvaluatedPolicy
    report: Mapping[str, Any] | None
    samples: Sequence[ProblemSamples] | None


def _matrix(matrix: FloatMatrix) -> list[list[float | None]]:
    return [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in matrix]


def compare_on_set(set_name: str, evaluations: Sequence[LoadedEvaluation]) -> dict[str, Any]:
    """Matrices over the problems of `set_name` that every policy with samples of it has,
    and each policy's avg@n and pass@k problem by problem (what a paired comparison of
    two runs resamples)."""
    by_policy: dict[str, dict[str, ProblemSamples]] = {}
    pass_at: set[int] = set()
    for evaluation in evaluations:
        problems = {p.prompt_id: p for p in evaluation.samples or () if p.set_name == set_name}
        if problems:
            by_policy[evaluation.policy.label] = problems
            figures = ((evaluation.report or {}).get("sets") or {}).get(set_name) or {}
            pass_at |= {int(k) for k in figures.get("pass@k") or {}}
    labels = list(by_policy)
    common = [pid for pid in by_policy[labels[0]] if all(pid in by_policy[x] for x in labels)]
    if not common:
        raise PhaseError(f"validation set {set_name!r}: the policies share no problem")
    samples = [[by_policy[x][pid] for pid in common] for x in labels]
    solved_by = solved([[p.correct for p in problems] for problems in samples])
    forgetting = forgetting_matrix(solved_by)
    return {
        "policies": labels,
        "problems": len(common),
        "solved": [round(float(v), 6) for v in solved_by.mean(axis=1)],
        "learning": _matrix(learning_matrix(solved_by)),
        "forgetting": _matrix(forgetting),
        "forgetting_rate": forgetting_rate(forgetting),
        "similarity": _matrix(
            bigram_similarity_matrix([[p.token_ids for p in s] for s in samples])
        ),
        "problem_ids": common,
        "per_problem": per_problem_figures(samples, sorted(pass_at)),
    }


def per_problem_figures(
    samples: Sequence[Sequence[ProblemSamples]], pass_at: Sequence[int]
) -> dict[str, list[list[float]]]:
    """samples[policy][problem] -> {"avg@n" or "pass@k": [policy][problem] values}: the
    numbers whose mean over problems is the evaluation's figure (passk.py), for each k of
    the report that every problem has samples for."""
    outcomes = [[ProblemOutcome(len(p.verdicts), p.correct) for p in s] for s in samples]
    fewest = min(o.samples for policy in outcomes for o in policy)
    most = max(o.samples for policy in outcomes for o in policy)
    name = f"avg@{most}" if fewest == most else "avg@n"
    figures = {name: [[round(o.correct / o.samples, 6) for o in policy] for policy in outcomes]}
    for k in (k for k in pass_at if k <= fewest):
        figures[f"pass@{k}"] = [[round(pass_at_k(o, k), 6) for o in policy] for policy in outcomes]
    return figures


def validation_points(evaluations: Sequence[LoadedEvaluation]) -> dict[str, dict[str, Any]]:
    """{set: {metric (avg@n, pass@k): [[rl_steps, value, label], ...]}} from the reports."""
    points: dict[str, dict[str, Any]] = {}
    for evaluation in evaluations:
        for set_name, figures in ((evaluation.report or {}).get("sets") or {}).items():
            metrics = {f"avg@{figures['samples']}": figures["avg@n"]}
            metrics |= {f"pass@{k}": v for k, v in figures["pass@k"].items()}
            for metric, value in metrics.items():
                series = points.setdefault(set_name, {}).setdefault(metric, [])
                series.append([evaluation.policy.rl_steps, value, evaluation.policy.label])
    return points


def analysis_document(
    config: RunAnalysisConfig,
    evaluations: Sequence[LoadedEvaluation],
    metrics: Sequence[tuple[int, Sequence[Mapping[str, object]]]],
) -> dict[str, Any]:
    """Everything analysis.json holds but the list of pictures."""
    set_names = sorted({p.set_name for e in evaluations for p in e.samples or ()})
    return {
        "policies": [e.policy.model_dump() for e in evaluations],
        "solved_means": SOLVED_MEANS,
        "sets": {name: compare_on_set(name, evaluations) for name in set_names},
        "validation": validation_points(evaluations),
        "training": training_curves(metrics),
        "iteration_starts": sorted({series.first_step for series in config.dapo_metrics}),
    }


def _load(policy: EvaluatedPolicy) -> LoadedEvaluation:
    samples: list[ProblemSamples] | None = None
    report: dict[str, Any] | None = None
    try:
        samples = read_samples(policy.eval_uri)
    except PhaseError as exc:
        log.warning("analysis leaves out the samples of %s: %s", policy.label, exc)
    try:
        report = json.loads(store.read_bytes(store.join(policy.eval_uri, "report.json")))
    except (PhaseError, ValueError) as exc:
        log.warning("analysis leaves out the report of %s: %s", policy.label, exc)
    return LoadedEvaluation(policy, report, samples)


def _metrics_text(uri: str) -> str:
    try:
        return store.read_bytes(uri).decode(errors="replace")
    except PhaseError as exc:
        log.warning("analysis has no training curves from %s: %s", uri, exc)
        return ""


def _pictures(document: Mapping[str, Any]) -> dict[str, bytes]:
    """The PNGs by file name; none if drawing fails, so the numbers are still written."""
    try:
        from rloop_trainer.analysis_plots import draw_pictures

        return draw_pictures(document)
    except Exception:
        log.exception("drawing the analysis pictures failed; analysis.json is written without")
        return {}


def refresh_run_analysis(config: RunAnalysisConfig) -> dict[str, Any]:
    """Recompute and rewrite the analysis; returns analysis.json's content."""
    evaluations = [_load(policy) for policy in config.evaluations]
    metrics = [
        (s.first_step, parse_metrics(_metrics_text(s.metrics_uri))) for s in config.dapo_metrics
    ]
    document = analysis_document(config, evaluations, metrics)
    pictures = _pictures(document)
    for name, png in pictures.items():
        store.write_bytes(store.join(config.output_uri, name), png)
    document["pictures"] = sorted(pictures)
    body = json.dumps(document, indent=1).encode()
    store.write_bytes(store.join(config.output_uri, ANALYSIS_FILE), body)
    log.info(
        "run analysis: %d policies, %d pictures under %s",
        len(evaluations),
        len(pictures),
        config.output_uri,
    )
    return document

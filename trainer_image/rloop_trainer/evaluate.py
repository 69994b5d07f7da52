"""Eval phase: avg@n and unbiased pass@k of a policy on each validation set.

For every problem the rollout engine draws `samples` responses; math-verify
decides each one. Written:
    report_uri        {"policy_uri": ..., "sets": {name: {"avg@n": .., "pass@k": {"8": ..},
                                                    "problems": .., "samples": n}}}
    output_uri/samples.parquet   every problem's samples and verdicts (eval_samples.py)
    output_uri/_SUCCESS          the same payload as the report, last
Then, with `analysis` in the config, the run-level analysis is refreshed
(run_analysis.py); its failure is logged and leaves the evaluation standing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import torch
from rloop_contract.sections import AnswerFormat, ValidationSet
from transformers import PreTrainedTokenizerBase

from rloop_trainer import data, dist, fencing, policy, progress, reward, store, termination
from rloop_trainer.config import EvalPhaseConfig, RunAnalysisConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.eval_samples import ProblemSamples, write_samples
from rloop_trainer.passk import ProblemOutcome, average_at_n, mean_pass_at_k
from rloop_trainer.rollout import RolloutEngine, SamplingSpec, make_engine
from rloop_trainer.tracking.phase_reports import track_evaluation
from rloop_trainer.tracking.session import PhaseTrackers, phase_trackers

log = logging.getLogger(__name__)

# Problems per engine call: vLLM schedules a large batch well; the HF engine
# splits it into its own batches anyway.
PROBLEMS_PER_CALL = 256

SetSummary = TypedDict(
    "SetSummary",
    {"avg@n": float, "pass@k": dict[str, float], "problems": int, "samples": int},
)


def summarize_set(verdicts: Sequence[Sequence[bool]], pass_at: Sequence[int]) -> SetSummary:
    """avg@n and pass@k from verdicts indexed [problem][sample]."""
    sample_counts = {len(samples) for samples in verdicts}
    if len(sample_counts) != 1:
        raise ValueError(
            f"every problem needs the same number of samples, got counts {sorted(sample_counts)}"
        )
    outcomes = [ProblemOutcome(len(samples), sum(samples)) for samples in verdicts]
    return {
        "avg@n": average_at_n(outcomes),
        "pass@k": {str(k): mean_pass_at_k(outcomes, k) for k in pass_at},
        "problems": len(outcomes),
        "samples": sample_counts.pop(),
    }


@dataclass(frozen=True)
class Problem:
    prompt_id: str
    token_ids: list[int]
    ground_truth: str


def encode_problems(
    records: Sequence[data.PromptRecord], tokenizer: PreTrainedTokenizerBase, max_prompt_tokens: int
) -> list[Problem]:
    """Prompts rendered and tokenized exactly as the DAPO phase does; too-long ones dropped."""
    problems = []
    for record in records:
        token_ids = data.encode_prompt(record, tokenizer).token_ids
        if len(token_ids) <= max_prompt_tokens:
            problems.append(Problem(record.prompt_id, token_ids, record.ground_truth))
    return problems


def sample_problems(
    engine: RolloutEngine,
    set_name: str,
    problems: Sequence[Problem],
    sampling: SamplingSpec,
    answer_format: AnswerFormat,
) -> list[ProblemSamples]:
    """Each problem's `sampling.n` responses, graded as DAPO grades them; generated a chunk
    of problems at a time."""
    sampled: list[ProblemSamples] = []
    for chunk_index, start in enumerate(range(0, len(problems), PROBLEMS_PER_CALL)):
        chunk = problems[start : start + PROBLEMS_PER_CALL]
        chunk_sampling = replace(sampling, seed=sampling.seed + chunk_index)
        completions = engine.generate([p.token_ids for p in chunk], chunk_sampling)
        truths = [p.ground_truth for p in chunk for _ in range(sampling.n)]
        flat_completions = [c for samples in completions for c in samples]
        flat = [v.correct for v in reward.grade(flat_completions, truths, answer_format)]
        progress.advanced()
        for i, (problem, samples) in enumerate(zip(chunk, completions, strict=True)):
            sampled.append(
                ProblemSamples(
                    set_name,
                    problem.prompt_id,
                    problem.ground_truth,
                    [c.token_ids for c in samples],
                    [c.text for c in samples],
                    flat[i * sampling.n : (i + 1) * sampling.n],
                )
            )
    return sampled


def evaluate_set(
    engine: RolloutEngine,
    tokenizer: PreTrainedTokenizerBase,
    validation: ValidationSet,
    records: Sequence[data.PromptRecord],
    config: EvalPhaseConfig,
) -> tuple[SetSummary, list[ProblemSamples]]:
    problems = encode_problems(records, tokenizer, config.max_prompt_tokens)
    if len(problems) < len(records):
        log.warning(
            "%s: skipped %d of %d problems longer than max_prompt_tokens=%d",
            validation.name,
            len(records) - len(problems),
            len(records),
            config.max_prompt_tokens,
        )
    if not problems:
        raise PhaseError(
            f"no problem of validation set {validation.name!r} ({validation.uri}) fits "
            f"max_prompt_tokens={config.max_prompt_tokens}; raise it"
        )
    sampling = SamplingSpec(
        n=validation.samples,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_response_tokens,
        seed=config.seed,
    )
    sampled = sample_problems(engine, validation.name, problems, sampling, config.reward.format)
    summary = summarize_set([s.verdicts for s in sampled], validation.pass_at)
    log.info("%s: avg@%d %.4f", validation.name, validation.samples, summary["avg@n"])
    return summary, sampled


def run_eval_phase(config: EvalPhaseConfig) -> dict[str, object]:
    """`rloop-trainer eval`: policy_uri -> report_uri and output_uri/samples.parquet, then
    output_uri/_SUCCESS."""
    # Bad validation data fails before this attempt claims the output and loads the model.
    records = {v.name: data.load_prompts(v.uri) for v in config.validation}
    with fencing.claimed(config.output_uri), phase_trackers(config, "eval") as trackers:
        return evaluate_policy(config, records, trackers)


def evaluate_policy(
    config: EvalPhaseConfig,
    records: dict[str, list[data.PromptRecord]],
    trackers: PhaseTrackers,
) -> dict[str, object]:
    reward.shared_verifier()  # its workers start while the model loads
    device = dist.device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, tokenizer = policy.load_policy(config.policy_uri, dtype, device)
    engine = make_engine(
        config.engine,
        model,
        tokenizer,
        policy_dir=policy.local_policy_dir(config.policy_uri),
        max_model_len=config.max_prompt_tokens + config.max_response_tokens,
        seed=config.seed,
    )
    sets: dict[str, SetSummary] = {}
    sampled: list[ProblemSamples] = []
    for validation in config.validation:
        summary, samples = evaluate_set(
            engine, tokenizer, validation, records[validation.name], config
        )
        sets[validation.name] = summary
        sampled += samples
    report: dict[str, object] = {"policy_uri": config.policy_uri, "sets": sets}
    store.retract_marker(config.output_uri)
    write_samples(config.output_uri, sampled)
    store.write_bytes(config.report_uri, json.dumps(report, indent=2).encode())
    store.write_marker(config.output_uri, report)
    termination.write_report(report)
    analysis = None if config.analysis is None else refresh_analysis(config.analysis)
    track_evaluation(trackers, config, sets, analysis)
    return report


def refresh_analysis(config: RunAnalysisConfig) -> dict[str, Any] | None:
    """The run-level analysis, after the evaluation is safely written: any failure of it
    (a missing earlier sample file, a plotting error) is logged, never the phase's.
    Returns analysis.json's content; None when it failed."""
    try:
        # Imported here so that even a broken plotting install cannot fail the evaluation.
        from rloop_trainer.run_analysis import refresh_run_analysis

        return refresh_run_analysis(config)
    except Exception:
        log.exception("run analysis under %s failed; the evaluation stands", config.output_uri)
        return None

"""The phase config the operator hands the trainer for each stage. Pure.

This is the operator's half of the only contract between the two: each dict is
parsed by the trainer's model of that phase (rloop_trainer.config) and travels in
the child's command as JSON.
"""

from __future__ import annotations

from typing import Any

from rloop_operator.api import RLoopRunSpec, Stage
from rloop_operator.layout import RunLayout
from rloop_operator.planning.inputs import RunView
from rloop_operator.policy_uris import produced_policy, starting_policy
from rloop_operator.stages import STAGE_SLUG


def phase_seed(spec: RLoopRunSpec, iteration: int, stage: Stage) -> int:
    if spec.mode == "vanilla" and stage is Stage.EXPLORING:
        iteration = 0  # the windows of one DAPO run share its seed
    return spec.seed + 1000 * iteration + list(STAGE_SLUG).index(stage)


def phase_config(run: RunView, iteration: int, stage: Stage) -> dict[str, Any]:
    """The JSON the trainer parses into its phase config (rloop_trainer.config)."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    layout = run.layout
    ref = {"namespace": run.namespace, "name": run.name, "uid": run.uid, "iteration": iteration}
    common = {"run": ref, "seed": phase_seed(spec, iteration, stage)}
    if stage is Stage.EXPLORING:
        return common | _dapo_config(spec, run, iteration)
    if stage is Stage.FILTERING:
        return common | {
            "trajectories_uri": layout.trajectories(iteration),
            "expert_uri": layout.expert_data(iteration),
            "report_uri": layout.expert_report(iteration),
            "output_uri": layout.expert(iteration),
            "hard_threshold": spec.filter.hard_threshold,
            "max_per_prompt": spec.filter.max_per_prompt,
            "dedupe": spec.filter.dedupe,
        }
    if stage is Stage.CONSOLIDATING:
        return common | _rft_config(spec, run, iteration)
    if stage is Stage.EVALUATING_BASE:
        base = layout.base_eval()
        return common | _eval_config(spec, spec.model.base, base, _analysis_config(spec, layout, 0))
    policy = produced_policy(spec, layout, iteration)
    analysis = _analysis_config(spec, layout, iteration + 1)
    return common | _eval_config(spec, policy, layout.eval(iteration), analysis)


def _eval_config(
    spec: RLoopRunSpec, policy_uri: str, output_uri: str, analysis: dict[str, Any]
) -> dict[str, Any]:
    return {
        "policy_uri": policy_uri,
        "report_uri": f"{output_uri}/report.json",
        "output_uri": output_uri,
        "validation": [
            {"name": v.name, "uri": v.uri, "samples": v.samples, "pass_at": list(v.pass_at)}
            for v in spec.data.validation
        ],
        "max_prompt_tokens": spec.dapo.max_prompt_tokens,
        "max_response_tokens": spec.eval.max_response_tokens,
        "temperature": spec.eval.temperature,
        "top_p": spec.eval.top_p,
        "reward_format": spec.reward.format,
        "engine": spec.dapo.engine,
        "analysis": analysis,
    }


def _analysis_config(spec: RLoopRunSpec, layout: RunLayout, evaluated: int) -> dict[str, Any]:
    """Every evaluation of the run so far, the base policy's first and the one being made
    last (`evaluated` iterations behind it), and every DAPO phase's metrics placed on the
    run's RL steps, for the analysis the eval phase refreshes. A vanilla window's metrics
    count the run's steps already, so they start at 0."""
    steps = spec.dapo.steps
    done = range(evaluated)
    base = {"label": "base", "iteration": 0, "rl_steps": 0, "eval_uri": layout.base_eval()}
    return {
        "output_uri": layout.analysis(),
        "evaluations": [base] + [
            {"label": f"iter {k + 1}", "iteration": k + 1, "rl_steps": steps * (k + 1),
             "eval_uri": layout.eval(k)}
            for k in done
        ],
        "dapo_metrics": [
            {"metrics_uri": layout.dapo_metrics(k),
             "first_step": 0 if spec.mode == "vanilla" else steps * k}
            for k in done
        ],
    }  # fmt: skip


def _dapo_config(spec: RLoopRunSpec, run: RunView, iteration: int) -> dict[str, Any]:
    dapo = spec.dapo
    return {
        "policy_uri": starting_policy(spec, run.layout, iteration),
        "train_data_uri": spec.data.train,
        "trajectories_uri": run.layout.trajectories(iteration),
        "rl_policy_uri": run.layout.rl_policy(iteration),
        "output_uri": run.layout.rl(iteration),
        "steps": dapo.steps,
        "group_size": dapo.group_size,
        "prompts_per_step": dapo.prompts_per_step,
        "max_prompt_tokens": dapo.max_prompt_tokens,
        "max_response_tokens": dapo.max_response_tokens,
        "temperature": dapo.temperature,
        "top_p": dapo.top_p,
        "clip_low": dapo.clip_low,
        "clip_high": dapo.clip_high,
        "dual_clip": dapo.dual_clip,
        "dynamic_sampling": dapo.dynamic_sampling,
        "oversample": dapo.oversample,
        "max_generation_rounds": dapo.max_generation_rounds,
        "updates_per_step": dapo.updates_per_step,
        "overlong_buffer": dapo.overlong_buffer,
        "overlong_penalty": dapo.overlong_penalty,
        "overlong_filtering": dapo.overlong_filtering,
        "reward_format": spec.reward.format,
        "checkpoint_every": dapo.checkpoint_every,
        "engine": dapo.engine,
        "training": {
            "lr": dapo.lr,
            "warmup_steps": dapo.warmup_steps,
            "weight_decay": dapo.weight_decay,
            "grad_clip": dapo.grad_clip,
            "micro_batch": dapo.micro_batch,
            "zero_stage": dapo.zero_stage,
        },
        "window": _window(spec, run.layout, iteration),
    }


def _window(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> dict[str, Any] | None:
    """Vanilla mode: iteration i is the (i+1)-th window of one DAPO run of iterations x
    dapo.steps steps, resuming the state the window before left in its checkpoints."""
    if spec.mode != "vanilla":
        return None
    return {
        "first_step": spec.dapo.steps * iteration,
        "run_steps": spec.dapo.steps * spec.iterations,
        "previous_uri": layout.rl(iteration - 1) if iteration else None,
    }


def _rft_config(spec: RLoopRunSpec, run: RunView, iteration: int) -> dict[str, Any]:
    layout = run.layout
    return {
        "policy_uri": starting_policy(spec, layout, iteration),
        "expert_uri": layout.expert_data(iteration),
        "output_uri": layout.policy(iteration + 1),
        "checkpoint_uri": layout.rft_checkpoints(iteration),
        "epochs": spec.rft.epochs,
        "batch_size": spec.rft.batch_size,
        "max_seq_tokens": spec.rft.max_seq_tokens,
        "training": {
            "lr": spec.rft.lr,
            "warmup_steps": spec.rft.warmup_steps,
            "weight_decay": spec.rft.weight_decay,
            "micro_batch": spec.rft.micro_batch,
            "zero_stage": spec.rft.zero_stage,
        },
    }

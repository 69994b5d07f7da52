"""The phase config the operator hands the trainer for each stage. Pure.

The operator's half of the only contract between the two: each config is the spec's
section for the phase (rloop_contract.sections), dumped as the trainer spells it, plus the
store URIs the operator chooses for the run's layout. The trainer parses it with its phase
config model (rloop_trainer.config), built from the same sections; the config travels in
the child's command as JSON. The stage table (stages.py) names each stage's builder.
"""

from __future__ import annotations

from typing import Any

from rloop_contract.sections import FilterSection

from rloop_operator.api import RLoopRunSpec
from rloop_operator.layout import RunLayout
from rloop_operator.policy_uris import produced_policy, starting_policy

ConfigBody = dict[str, Any]


def dapo_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody:
    return spec.dapo.model_dump() | {
        "reward": spec.reward.model_dump(),
        "policy_uri": starting_policy(spec, layout, iteration),
        "train_data_uri": spec.data.train,
        "trajectories_uri": layout.trajectories(iteration),
        "rl_policy_uri": layout.rl_policy(iteration),
        "output_uri": layout.rl(iteration),
        "window": _window(spec, layout, iteration),
        "collective_timeout_seconds": spec.resources.collective_timeout_seconds,
    }


def _window(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody | None:
    """Vanilla mode: iteration i is the (i+1)-th window of one DAPO run of iterations x
    dapo.steps steps, resuming the state the window before left in its checkpoints."""
    if spec.mode != "vanilla":
        return None
    return {
        "first_step": spec.dapo.steps * iteration,
        "run_steps": spec.dapo.steps * spec.iterations,
        "previous_uri": layout.rl(iteration - 1) if iteration else None,
    }


def filter_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody:
    # spec.filter also holds the filter pod's resources, which are not the trainer's.
    return spec.filter.model_dump(include=set(FilterSection.model_fields)) | {
        "trajectories_uri": layout.trajectories(iteration),
        "expert_uri": layout.expert_data(iteration),
        "report_uri": layout.expert_report(iteration),
        "output_uri": layout.expert(iteration),
    }


def rft_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody:
    return spec.rft.model_dump() | {
        "policy_uri": starting_policy(spec, layout, iteration),
        "expert_uri": layout.expert_data(iteration),
        "output_uri": layout.policy(iteration + 1),
        "checkpoint_uri": layout.rft_checkpoints(iteration),
        "collective_timeout_seconds": spec.resources.collective_timeout_seconds,
    }


def eval_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody:
    """The evaluation of the policy iteration `iteration` produced."""
    policy = produced_policy(spec, layout, iteration)
    return _evaluation(spec, layout, policy, layout.eval(iteration), iteration + 1)


def base_eval_config(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> ConfigBody:
    """The evaluation of theta_0, before any RL step (iteration 0 only)."""
    return _evaluation(spec, layout, spec.model.base, layout.base_eval(), 0)


def _evaluation(
    spec: RLoopRunSpec, layout: RunLayout, policy_uri: str, output_uri: str, evaluated: int
) -> ConfigBody:
    return spec.eval.model_dump() | {
        "policy_uri": policy_uri,
        "report_uri": f"{output_uri}/report.json",
        "output_uri": output_uri,
        "validation": [v.model_dump() for v in spec.data.validation],
        "max_prompt_tokens": spec.dapo.max_prompt_tokens,
        "engine": spec.dapo.engine,
        "reward": spec.reward.model_dump(),
        "analysis": _analysis_config(spec, layout, evaluated),
    }


def _analysis_config(spec: RLoopRunSpec, layout: RunLayout, evaluated: int) -> ConfigBody:
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

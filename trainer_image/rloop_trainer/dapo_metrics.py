"""A DAPO step's line of metrics.jsonl, from its rollouts, its update and its timings. Pure.

accuracy, reward, response_length and truncated_fraction are over every rollout of the
step (the paper's training curves); the kept_* figures over the kept groups only, the
batch the update trained on, where verl's DAPO takes its data metrics (tracking/names.py
gives them verl's names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rloop_trainer.rollout.groups import Group

if TYPE_CHECKING:
    from rloop_trainer.dapo import StepRollouts


@dataclass(frozen=True)
class StepTimings:
    """Wall seconds of a step's parts that the rollouts and the update do not time."""

    write_seconds: float  # caching the step's rollouts in the store
    sync_seconds: float  # loading the new weights into the rollout engine
    step_seconds: float  # the whole step, from the first generation round to the sync


def step_metrics(
    step: int,
    rollouts: StepRollouts,
    train_stats: dict[str, float],
    timings: StepTimings,
    world_size: int,
) -> dict[str, float]:
    """One metrics.jsonl line."""
    samples = [r for group in rollouts.all_groups for r in group.rollouts]
    generated_tokens = sum(len(r.completion.token_ids) for r in samples)
    return {
        "step": step,
        "reward": sum(r.reward for r in samples) / len(samples),
        "accuracy": sum(r.correct for r in samples) / len(samples),
        "response_length": generated_tokens / len(samples),
        "truncated_fraction": sum(r.completion.truncated for r in samples) / len(samples),
        "generation_rounds": rollouts.rounds,
        "kept_groups": len(rollouts.kept_groups),
        "generated_groups": len(rollouts.all_groups),
        "rollout_tokens_per_s": generated_tokens / max(rollouts.seconds, 1e-9),
        "time_rollout_s": rollouts.seconds,
        "time_write_s": timings.write_seconds,
        "time_sync_s": timings.sync_seconds,
        "time_step_s": timings.step_seconds,
        **kept_batch_metrics(rollouts.kept_groups, timings.step_seconds, world_size),
        **train_stats,
    }


def kept_batch_metrics(
    kept_groups: Sequence[Group], step_seconds: float, world_size: int
) -> dict[str, float]:
    """The trained batch's mean reward, response length and truncated fraction (none when
    no group was kept), and its prompt and response tokens per second of the step per
    rank (verl's perf/throughput: tokens per second per GPU)."""
    kept = [(group.task, rollout) for group in kept_groups for rollout in group.rollouts]
    tokens = sum(len(task.token_ids) + len(r.completion.token_ids) for task, r in kept)
    throughput = {
        "kept_tokens": float(tokens),
        "kept_tokens_per_rank_s": tokens / max(step_seconds * world_size, 1e-9),
    }
    if not kept:
        return throughput
    return throughput | {
        "kept_reward": sum(r.reward for _, r in kept) / len(kept),
        "kept_response_length": sum(len(r.completion.token_ids) for _, r in kept) / len(kept),
        "kept_truncated_fraction": sum(r.completion.truncated for _, r in kept) / len(kept),
    }

"""One generation round: n samples for each prompt, verified and shaped into rewards.

Each rank generates and scores its share of the round's prompts; the groups are
then gathered so that every rank holds the whole round in prompt order, makes the
same dynamic-sampling decision, and rank 0 can cache every rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import torch.distributed as torch_dist
from rloop_contract.sections import AnswerFormat

from rloop_trainer import reward
from rloop_trainer.rollout.base import Completion, RolloutEngine, SamplingSpec
from rloop_trainer.schema import TRAJECTORY_SCHEMA


@dataclass(frozen=True)
class PromptTask:
    """A prompt ready to sample from: its stable id, text, token ids and ground truth."""

    prompt_id: str
    text: str
    token_ids: list[int]
    ground_truth: str


@dataclass(frozen=True)
class Rollout:
    """One graded sample: `correct` is the success (reward.Verdict.correct)."""

    completion: Completion
    correct: bool
    reward: float


@dataclass(frozen=True)
class Group:
    """The n rollouts of one prompt in one generation round."""

    task: PromptTask
    generation_round: int
    rollouts: tuple[Rollout, ...]

    @property
    def correct(self) -> list[bool]:
        return [rollout.correct for rollout in self.rollouts]


@dataclass(frozen=True)
class RewardShape:
    """How rollouts are graded and shaped into rewards."""

    answer_format: AnswerFormat
    max_tokens: int
    overlong_buffer: int
    overlong_penalty: float


def score_groups(
    tasks: Sequence[PromptTask],
    completions: Sequence[Sequence[Completion]],
    generation_round: int,
    shape: RewardShape,
) -> list[Group]:
    """Grade every completion (math-verify pool) and attach DAPO's shaped rewards."""
    flat = [(task, c) for task, samples in zip(tasks, completions, strict=True) for c in samples]
    verdicts = iter(
        reward.grade([c for _, c in flat], [t.ground_truth for t, _ in flat], shape.answer_format)
    )
    groups = []
    for task, samples in zip(tasks, completions, strict=True):
        rollouts = []
        for completion in samples:
            verdict = next(verdicts)
            shaped = reward.shaped_reward(
                verdict.verified,
                len(completion.token_ids),
                shape.max_tokens,
                shape.overlong_buffer,
                shape.overlong_penalty,
            )
            rollouts.append(Rollout(completion, verdict.correct, shaped))
        groups.append(Group(task, generation_round, tuple(rollouts)))
    return groups


def generate_round(
    engine: RolloutEngine,
    tasks: Sequence[PromptTask],
    sampling: SamplingSpec,
    generation_round: int,
    shape: RewardShape,
    rank: int,
    world_size: int,
) -> list[Group]:
    """This rank samples and scores tasks[rank::world_size]; returns ALL groups, in order."""
    local_tasks = list(tasks[rank::world_size])
    completions = engine.generate([task.token_ids for task in local_tasks], sampling)
    local_groups = score_groups(local_tasks, completions, generation_round, shape)
    if world_size == 1:
        return local_groups
    gathered: list[list[Group] | None] = [None] * world_size
    torch_dist.all_gather_object(gathered, local_groups)
    ordered: list[Group] = []
    for position in range(len(tasks)):
        shard = gathered[position % world_size]
        assert shard is not None
        ordered.append(shard[position // world_size])
    return ordered


def trajectory_table(groups: Sequence[Group], step: int, policy_version: int) -> pa.Table:
    """Every rollout as one row of TRAJECTORY_SCHEMA (before any filtering)."""
    rows = [
        {
            "prompt_id": group.task.prompt_id,
            "step": step,
            "sample_index": index,
            "generation_round": group.generation_round,
            "policy_version": policy_version,
            "prompt": group.task.text,
            "response": rollout.completion.text,
            "prompt_token_ids": group.task.token_ids,
            "response_token_ids": rollout.completion.token_ids,
            "ground_truth": group.task.ground_truth,
            "reward": rollout.reward,
            "correct": rollout.correct,
            "truncated": rollout.completion.truncated,
            "response_length": len(rollout.completion.token_ids),
        }
        for group in groups
        for index, rollout in enumerate(group.rollouts)
    ]
    return pa.Table.from_pylist(rows, schema=TRAJECTORY_SCHEMA)

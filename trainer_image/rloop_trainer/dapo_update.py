"""The DAPO policy updates of one step, spread over the ranks.

A step's kept groups come in mini-batches of a fixed number of groups
(`DapoPhaseConfig.groups_per_update`), one optimizer update each. Each rank takes every
world_size-th sequence of a mini-batch and cuts its share into micro-batches of similar
lengths (less padding). The loss is normalised by the mini-batch's response-token count
summed over all ranks, so the gradient is the same however the batch is sharded.
Log-probabilities are taken at the sampling temperature, the distribution the rollouts
were drawn from.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from rloop_trainer import dist
from rloop_trainer.batches import MicroBatch, accumulate, by_length, collate
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo_loss import clipped_policy_loss, token_mean
from rloop_trainer.training import TrainEngine, UpdateOutcome


@dataclass(frozen=True)
class TrainSequence:
    prompt_ids: list[int]
    response_ids: list[int]
    advantage: float


@dataclass(frozen=True)
class PolicyBatch:
    """A micro-batch of the policy loss: its tokens, each row's advantage (B,), and the
    rollout policy's log-probs (B, L - 1), or None when that is the current policy."""

    tokens: MicroBatch
    advantages: torch.Tensor
    old_log_probs: torch.Tensor | None = None


class _Totals:
    """Sums over this rank's loss tokens, for the step's metrics; `loss` sums this rank's
    shares of each update's token-mean loss (the shares of all ranks make the update's)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.tokens = 0.0
        self.clipped = 0.0
        self.entropy = 0.0
        self.sequence_tokens = 0.0


def _rank_micro_batches(
    mini_batch: Sequence[TrainSequence], config: DapoPhaseConfig, pad_token_id: int
) -> list[PolicyBatch]:
    """This rank's share of a mini-batch, as length-sorted micro-batches on CPU."""
    layout = dist.layout_from_env()
    share = mini_batch[layout.rank :: layout.world_size]
    max_tokens = config.max_prompt_tokens + config.max_response_tokens
    return [
        PolicyBatch(
            collate(
                [s.prompt_ids for s in micro],
                [s.response_ids for s in micro],
                pad_token_id,
                max_tokens,
            ),
            torch.tensor([s.advantage for s in micro]),
        )
        for micro in by_length(
            share, config.micro_batch, lambda s: len(s.prompt_ids) + len(s.response_ids)
        )
    ]


@torch.no_grad()
def _with_old_log_probs(
    trainer: TrainEngine, micro_batches: list[PolicyBatch], temperature: float
) -> list[PolicyBatch]:
    """The micro-batches with the log-probs of the policy that generated the rollouts."""
    with_old = []
    for batch in micro_batches:
        tokens = batch.tokens.to(trainer.device)
        old = trainer.next_token_log_probs(
            tokens.input_ids, tokens.attention_mask, temperature=temperature
        )
        with_old.append(PolicyBatch(batch.tokens, batch.advantages, old))
    return with_old


def _policy_loss(
    trainer: TrainEngine,
    batch: PolicyBatch,
    config: DapoPhaseConfig,
    global_tokens: float,
    totals: _Totals,
) -> torch.Tensor:
    """This micro-batch's share of the mini-batch's token-mean clipped loss."""
    tokens = batch.tokens.to(trainer.device)
    log_probs, entropy = trainer.next_token_log_probs_and_entropy(
        tokens.input_ids, tokens.attention_mask, temperature=config.temperature
    )
    old = log_probs.detach() if batch.old_log_probs is None else batch.old_log_probs
    advantages = batch.advantages.to(trainer.device)
    loss, clipped = clipped_policy_loss(
        log_probs, old, advantages, config.clip_low, config.clip_high, config.dual_clip
    )
    mask = tokens.target_mask
    with torch.no_grad():
        totals.tokens += float(mask.sum())
        totals.clipped += float((clipped.float() * mask).sum())
        totals.entropy += float((entropy * mask).sum())
        totals.sequence_tokens += float(tokens.attention_mask.sum())
    share = token_mean(loss, mask, global_tokens)
    totals.loss += float(share.detach())
    return share


def update_policy(
    trainer: TrainEngine,
    mini_batches: Sequence[Sequence[TrainSequence]],
    config: DapoPhaseConfig,
    pad_token_id: int,
) -> dict[str, float]:
    """One optimizer update per mini-batch (DAPO eq. 10-12); returns loss-side metrics.

    The first update's rollout policy is the current one (ratio 1); the later ones need
    its log-probs, taken before the first update changes the weights."""
    started = time.perf_counter()
    plans = [_rank_micro_batches(mini, config, pad_token_id) for mini in mini_batches]
    plans[1:] = [_with_old_log_probs(trainer, plan, config.temperature) for plan in plans[1:]]
    totals, outcomes = _Totals(), []
    for plan in plans:
        global_tokens = dist.all_reduce_float(sum(b.tokens.target_tokens for b in plan))
        loss_of = partial(
            _policy_loss, trainer, config=config, global_tokens=global_tokens, totals=totals
        )
        accumulate(trainer, plan, loss_of)
        outcomes.append(trainer.step())
    return _update_metrics(totals, outcomes, time.perf_counter() - started)


def _update_metrics(
    totals: _Totals, outcomes: Sequence[UpdateOutcome], seconds: float
) -> dict[str, float]:
    tokens = max(dist.all_reduce_float(totals.tokens), 1.0)
    applied = [o.grad_norm for o in outcomes if not o.skipped]
    return {
        "pg_loss": dist.all_reduce_float(totals.loss) / max(len(outcomes), 1),
        "updates": float(len(outcomes)),
        "skipped_updates": float(len(outcomes) - len(applied)),
        "clip_fraction": dist.all_reduce_float(totals.clipped) / tokens,
        "token_entropy": dist.all_reduce_float(totals.entropy) / tokens,
        "grad_norm": sum(applied) / len(applied) if applied else 0.0,
        "train_tokens_per_s": dist.all_reduce_float(totals.sequence_tokens) / max(seconds, 1e-9),
        "time_train_s": seconds,
    }

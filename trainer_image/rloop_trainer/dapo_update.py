"""The DAPO policy update of one step, spread over the ranks.

The kept sequences are cut into `updates_per_step` mini-batches; each rank takes
every world_size-th sequence of a mini-batch, and every rank runs the same number
of backward passes (ZeRO reduces during backward), padding with a zero-loss pass
where it has fewer micro-batches. The loss is normalised by the mini-batch's
response-token count summed over all ranks, so the gradient is the same however
the batch is sharded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rloop_trainer import dist
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo_loss import clipped_policy_loss, token_entropy, token_log_probs, token_mean
from rloop_trainer.training import TrainEngine, pad_sequences


@dataclass(frozen=True)
class TrainSequence:
    prompt_ids: list[int]
    response_ids: list[int]
    advantage: float
    in_loss: bool


def split_evenly(items: Sequence[TrainSequence], parts: int) -> list[list[TrainSequence]]:
    """`parts` contiguous slices whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        slices.append(list(items[start:end]))
        start = end
    return slices


class _Totals:
    def __init__(self) -> None:
        self.tokens = 0.0
        self.clipped = 0.0
        self.entropy = 0.0
        self.sequence_tokens = 0.0


def _log_probs(
    trainer: TrainEngine, micro: list[TrainSequence], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-probs (B, L-1), loss mask (B, L-1), logits (B, L-1, V)) of a micro-batch."""
    prompts = [s.prompt_ids for s in micro]
    input_ids, attention_mask, response_mask = pad_sequences(
        prompts, [s.response_ids for s in micro], pad_token_id
    )
    input_ids = input_ids.to(trainer.device)
    logits = trainer.forward(input_ids, attention_mask.to(trainer.device))[:, :-1]
    in_loss = torch.tensor([float(s.in_loss) for s in micro]).unsqueeze(-1)
    mask = (response_mask * in_loss).to(trainer.device)
    return token_log_probs(logits, input_ids[:, 1:]), mask, logits


def _padding_pass(trainer: TrainEngine, pad_token_id: int) -> None:
    """A backward pass that adds nothing, so this rank joins ZeRO's collectives."""
    input_ids = torch.full((1, 2), pad_token_id, dtype=torch.long, device=trainer.device)
    logits = trainer.forward(input_ids, torch.ones_like(input_ids))
    trainer.backward(logits.sum() * 0.0)


@torch.no_grad()
def _old_log_probs(
    trainer: TrainEngine, local: list[TrainSequence], micro_batch: int, pad_token_id: int
) -> list[torch.Tensor]:
    """Log-probs of the policy that generated the rollouts, one (L-1,) row per micro-batch."""
    rows: list[torch.Tensor] = []
    for start in range(0, len(local), micro_batch):
        log_probs, _, _ = _log_probs(trainer, local[start : start + micro_batch], pad_token_id)
        rows.append(log_probs)
    return rows


def update_policy(
    trainer: TrainEngine,
    sequences: Sequence[TrainSequence],
    config: DapoPhaseConfig,
    tokenizer: PreTrainedTokenizerBase,
) -> dict[str, float]:
    """Run the step's optimizer updates; returns loss-side metrics."""
    if not sequences:
        return dict.fromkeys(
            ("clip_fraction", "token_entropy", "grad_norm", "train_tokens_per_s", "time_train_s"),
            0.0,
        ) | {"lr": trainer.lr}
    layout = dist.layout_from_env()
    pad_token_id = int(tokenizer.pad_token_id)
    micro_batch = config.training.micro_batch
    totals, grad_norms = _Totals(), []
    started = time.perf_counter()
    mini_batches = [
        part[layout.rank :: layout.world_size]
        for part in split_evenly(sequences, config.updates_per_step)
    ]
    # With one update per step the rollout policy IS the current policy: the ratio is 1.
    old = (
        [_old_log_probs(trainer, part, micro_batch, pad_token_id) for part in mini_batches]
        if config.updates_per_step > 1
        else None
    )
    for index, local in enumerate(mini_batches):
        in_loss_tokens = sum(len(s.response_ids) for s in local if s.in_loss)
        global_tokens = dist.all_reduce_float(float(in_loss_tokens))
        for micro_index in range(trainer.micro_batch_count(len(local))):
            micro = local[micro_index * micro_batch : (micro_index + 1) * micro_batch]
            if not micro:
                _padding_pass(trainer, pad_token_id)
                continue
            log_probs, mask, logits = _log_probs(trainer, micro, pad_token_id)
            old_log_probs = log_probs.detach() if old is None else old[index][micro_index]
            advantages = torch.tensor([s.advantage for s in micro], device=trainer.device)
            loss, clipped = clipped_policy_loss(
                log_probs,
                old_log_probs,
                advantages,
                config.clip_low,
                config.clip_high,
                config.dual_clip,
            )
            trainer.backward(token_mean(loss, mask, global_tokens))
            with torch.no_grad():
                totals.tokens += float(mask.sum())
                totals.clipped += float((clipped.float() * mask).sum())
                totals.entropy += float((token_entropy(logits) * mask).sum())
                totals.sequence_tokens += sum(
                    len(s.prompt_ids) + len(s.response_ids) for s in micro
                )
        grad_norms.append(trainer.step())
    seconds = time.perf_counter() - started
    tokens = max(dist.all_reduce_float(totals.tokens), 1.0)
    return {
        "clip_fraction": dist.all_reduce_float(totals.clipped) / tokens,
        "token_entropy": dist.all_reduce_float(totals.entropy) / tokens,
        "grad_norm": sum(grad_norms) / len(grad_norms),
        "train_tokens_per_s": dist.all_reduce_float(totals.sequence_tokens) / max(seconds, 1e-9),
        "time_train_s": seconds,
        "lr": trainer.lr,
    }

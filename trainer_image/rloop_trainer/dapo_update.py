"""The DAPO policy update of one step, spread over the ranks.

The kept sequences are cut into `updates_per_step` mini-batches; each rank takes
every world_size-th sequence of a mini-batch and cuts its share into micro-batches of
similar lengths (less padding). Every rank runs the same number
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
from rloop_trainer.dapo_loss import clipped_policy_loss, token_mean
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


def micro_batches(local: Sequence[TrainSequence], size: int) -> list[list[TrainSequence]]:
    """`local` sorted by length and cut into micro-batches of `size` (the last may be
    shorter), so each pads to lengths close to its own. The loss is a token sum over a
    global token count, so the grouping leaves the gradient unchanged."""
    ordered = sorted(local, key=lambda s: len(s.prompt_ids) + len(s.response_ids))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _padded(
    trainer: TrainEngine, micro: list[TrainSequence], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids (B, L), attention_mask (B, L) and loss mask (B, L-1) on the trainer's device."""
    input_ids, attention_mask, response_mask = pad_sequences(
        [s.prompt_ids for s in micro], [s.response_ids for s in micro], pad_token_id
    )
    in_loss = torch.tensor([float(s.in_loss) for s in micro]).unsqueeze(-1)
    device = trainer.device
    return input_ids.to(device), attention_mask.to(device), (response_mask * in_loss).to(device)


def _padding_pass(trainer: TrainEngine, pad_token_id: int) -> None:
    """A backward pass that adds nothing, so this rank joins ZeRO's collectives."""
    input_ids = torch.full((1, 2), pad_token_id, dtype=torch.long, device=trainer.device)
    log_probs = trainer.next_token_log_probs(input_ids, torch.ones_like(input_ids))
    trainer.backward(log_probs.sum() * 0.0)


@torch.no_grad()
def _old_log_probs(
    trainer: TrainEngine, micros: list[list[TrainSequence]], pad_token_id: int
) -> list[torch.Tensor]:
    """Log-probs (B, L-1) of the policy that generated the rollouts, one per micro-batch."""
    rows: list[torch.Tensor] = []
    for micro in micros:
        input_ids, attention_mask, _ = _padded(trainer, micro, pad_token_id)
        rows.append(trainer.next_token_log_probs(input_ids, attention_mask))
    return rows


def _micro_step(
    trainer: TrainEngine,
    micro: list[TrainSequence],
    old_log_probs: torch.Tensor | None,
    config: DapoPhaseConfig,
    pad_token_id: int,
    global_tokens: float,
    totals: _Totals,
) -> None:
    """Forward and backward of one micro-batch's share of the clipped loss. Without
    `old_log_probs` the rollout policy is the current one (the ratio is 1)."""
    input_ids, attention_mask, mask = _padded(trainer, micro, pad_token_id)
    log_probs, entropy = trainer.next_token_log_probs_and_entropy(input_ids, attention_mask)
    advantages = torch.tensor([s.advantage for s in micro], device=trainer.device)
    loss, clipped = clipped_policy_loss(
        log_probs,
        log_probs.detach() if old_log_probs is None else old_log_probs,
        advantages,
        config.clip_low,
        config.clip_high,
        config.dual_clip,
    )
    trainer.backward(token_mean(loss, mask, global_tokens))
    with torch.no_grad():
        totals.tokens += float(mask.sum())
        totals.clipped += float((clipped.float() * mask).sum())
        totals.entropy += float((entropy * mask).sum())
        totals.sequence_tokens += sum(len(s.prompt_ids) + len(s.response_ids) for s in micro)


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
    plan = [
        micro_batches(part[layout.rank :: layout.world_size], micro_batch)
        for part in split_evenly(sequences, config.updates_per_step)
    ]
    # With one update per step the rollout policy IS the current policy: the ratio is 1.
    old = (
        [_old_log_probs(trainer, micros, pad_token_id) for micros in plan]
        if config.updates_per_step > 1
        else None
    )
    for index, micros in enumerate(plan):
        in_loss_tokens = sum(len(s.response_ids) for micro in micros for s in micro if s.in_loss)
        global_tokens = dist.all_reduce_float(float(in_loss_tokens))
        local_sequences = sum(len(micro) for micro in micros)
        for micro_index in range(trainer.micro_batch_count(local_sequences)):
            if micro_index >= len(micros):
                _padding_pass(trainer, pad_token_id)
                continue
            old_log_probs = None if old is None else old[index][micro_index]
            _micro_step(
                trainer,
                micros[micro_index],
                old_log_probs,
                config,
                pad_token_id,
                global_tokens,
                totals,
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

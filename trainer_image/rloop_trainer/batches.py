"""Padded micro-batches and gradient accumulation, the same for the DAPO and RFT updates.

One mask convention: `target_mask[b, t]` is 1 where the TARGET `input_ids[b, t + 1]` is
a response token, the positions of `TrainEngine.next_token_log_probs` (B, L - 1) that
carry loss. Prompt tokens are context, never targets, and neither is the first token
of a sequence (nothing predicts it, even when the prompt is empty).

Every rank runs the same number of backward passes in an update: ZeRO reduces
gradients inside backward (and ZeRO-3 gathers parameters inside forward), so a rank
that ran fewer would leave the others waiting. `accumulate` pads a rank that has
fewer micro-batches with passes that add nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from rloop_trainer.training import TrainEngine

Item = TypeVar("Item")


@dataclass(frozen=True)
class MicroBatch:
    """Right-padded prompt+response rows."""

    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long
    target_mask: torch.Tensor  # (B, L - 1) float, 1 on response targets

    @property
    def target_tokens(self) -> int:
        return int(self.target_mask.sum())

    def to(self, device: torch.device) -> MicroBatch:
        return MicroBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.target_mask.to(device)
        )


def collate(
    prompts: Sequence[list[int]],
    responses: Sequence[list[int]],
    pad_token_id: int,
    max_tokens: int,
) -> MicroBatch:
    """Prompt + response of each row, cut to its first `max_tokens` tokens (a response
    cut short keeps its head, the tokens that follow the prompt), right-padded to the
    longest row."""
    rows = [(p + r)[:max_tokens] for p, r in zip(prompts, responses, strict=True)]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    target_mask = torch.zeros((len(rows), max(width - 1, 0)), dtype=torch.float32)
    for index, (prompt, row) in enumerate(zip(prompts, rows, strict=True)):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, : len(row)] = 1
        target_mask[index, max(len(prompt), 1) - 1 : len(row) - 1] = 1.0
    return MicroBatch(input_ids, attention_mask, target_mask)


def by_length(items: Sequence[Item], size: int, length: Callable[[Item], int]) -> list[list[Item]]:
    """`items` shortest first, cut into micro-batches of `size` (the last may be shorter),
    so each pads to lengths close to its own. Losses are token sums over a global count,
    so the grouping leaves the gradient unchanged."""
    ordered = sorted(items, key=length)
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def accumulate(
    trainer: TrainEngine, micro_batches: Sequence[Item], loss_of: Callable[[Item], torch.Tensor]
) -> None:
    """Backward of `loss_of(m)` (already normalised by the caller) for each of this rank's
    micro-batches, then zero-weighted passes until this rank has run as many as the
    busiest rank."""
    for index in range(trainer.max_over_ranks(len(micro_batches))):
        if index < len(micro_batches):
            trainer.backward(loss_of(micro_batches[index]))
        else:
            trainer.backward(_idle_loss(trainer))


def _idle_loss(trainer: TrainEngine) -> torch.Tensor:
    """A loss of exactly zero through the whole model, so this rank joins the collectives."""
    input_ids = torch.zeros((1, 2), dtype=torch.long, device=trainer.device)
    log_probs = trainer.next_token_log_probs(input_ids, torch.ones_like(input_ids), temperature=1.0)
    return log_probs.sum() * 0.0

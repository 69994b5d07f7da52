"""Supervised fine-tuning on expert responses: batching and the response-only loss.

RFT (RLoop, arXiv 2511.04285, section 3.3) maximises the likelihood of the expert
responses given their prompts; the prompt tokens are context, not targets, so they
carry no loss. The loss is a token mean over every response token of the global
batch, so each token weighs the same whatever the response lengths and however
the batch is sharded over ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ExpertExample:
    prompt_token_ids: list[int]
    response_token_ids: list[int]


@dataclass(frozen=True)
class SftBatch:
    """Right-padded sequences; `loss_mask` marks the response tokens (the targets)."""

    input_ids: torch.Tensor  # (batch, seq) long
    attention_mask: torch.Tensor  # (batch, seq) long
    loss_mask: torch.Tensor  # (batch, seq) bool

    @property
    def response_tokens(self) -> int:
        return int(self.loss_mask.sum())


def target_tokens(
    prompt_lengths: np.ndarray, response_lengths: np.ndarray, max_seq_tokens: int
) -> np.ndarray:
    """(examples,) response tokens that carry loss once a sequence is cut to `max_seq_tokens`.

    The first token of a sequence has nothing to be predicted from, so it is
    never a target, even when the prompt is empty.
    """
    kept = np.minimum(prompt_lengths + response_lengths, max_seq_tokens)
    targets: np.ndarray = np.maximum(kept - np.maximum(prompt_lengths, 1), 0)
    return targets


def collate_sft_batch(
    examples: Sequence[ExpertExample], pad_token_id: int, max_seq_tokens: int
) -> SftBatch:
    """Concatenate prompt and response; keep the first `max_seq_tokens` tokens.

    Returns tensors of shape (len(examples), longest kept sequence). A response cut
    by `max_seq_tokens` keeps its head: the tokens that follow the prompt. The
    targets are the ones `target_tokens` counts.
    """
    sequences = [(e.prompt_token_ids + e.response_token_ids)[:max_seq_tokens] for e in examples]
    longest = max((len(s) for s in sequences), default=0)
    input_ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), longest), dtype=torch.bool)
    for row, (example, sequence) in enumerate(zip(examples, sequences, strict=True)):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
        loss_mask[row, max(len(example.prompt_token_ids), 1) : len(sequence)] = True
    return SftBatch(input_ids, attention_mask, loss_mask)


def response_nll_sum(target_log_probs: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the masked target tokens.

    Args: target_log_probs (batch, seq - 1), where entry t is log p(token t + 1) given
          tokens up to t (`TrainEngine.next_token_log_probs`); loss_mask (batch, seq)
          bool over targets.
    Returns: a scalar; divide by the global count of masked tokens for the token mean.
    """
    return -(target_log_probs * loss_mask[:, 1:]).sum()

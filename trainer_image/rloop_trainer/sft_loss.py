"""Supervised fine-tuning on expert responses: the response-only loss.

RFT (RLoop, arXiv 2511.04285, section 3.3) maximises the likelihood of the expert
responses given their prompts; the prompt tokens are context, not targets, so they
carry no loss. The loss is a token mean over every response token of the global
batch, so each token weighs the same whatever the response lengths and however
the batch is sharded over ranks. Batching is batches.collate's.
"""

from __future__ import annotations

import numpy as np
import torch


def target_tokens(
    prompt_lengths: np.ndarray, response_lengths: np.ndarray, max_seq_tokens: int
) -> np.ndarray:
    """(examples,) response tokens that carry loss once a sequence is cut to `max_seq_tokens`.

    The first token of a sequence has nothing to be predicted from, so it is
    never a target, even when the prompt is empty (batches.collate's targets).
    """
    kept = np.minimum(prompt_lengths + response_lengths, max_seq_tokens)
    targets: np.ndarray = np.maximum(kept - np.maximum(prompt_lengths, 1), 0)
    return targets


def response_nll_sum(target_log_probs: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the masked target tokens.

    Args: target_log_probs (B, L - 1), where entry t is log p(token t + 1) given tokens up
          to t (`TrainEngine.next_token_log_probs`); target_mask (B, L - 1), 1 on the
          response targets (`batches.MicroBatch.target_mask`).
    Returns: a scalar; divide by the global count of masked tokens for the token mean.
    """
    return -(target_log_probs * target_mask).sum()

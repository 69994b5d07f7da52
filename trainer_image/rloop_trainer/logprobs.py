"""Next-token log-probabilities (and entropies) from a policy's final hidden states.

The logits of a micro-batch are (tokens x vocabulary): at Qwen2.5's 151,936-token
vocabulary and 8,192 tokens that is 5 GB in fp32, and a log-softmax with its
backward makes several passes over it (bench/RESULTS.md, GPU section). Here the
output layer runs on `chunk_tokens` positions at a time and each chunk is
checkpointed, so only one chunk's logits exist at once, in forward and in backward;
the softmax is taken in fp32 when the model computes in a narrower type.

Shapes: B sequences, T positions, H hidden size, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

LOGIT_CHUNK_TOKENS = 1024

OutputLayer = Callable[[torch.Tensor], torch.Tensor]  # (N, H) -> (N, V) logits


def _at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _chunk_log_probs(
    hidden: torch.Tensor, targets: torch.Tensor, output_layer: OutputLayer
) -> tuple[torch.Tensor, ...]:
    """(N, H), (N,) -> ((N,) log p(target))."""
    logits = _at_least_fp32(output_layer(hidden))
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (picked - torch.logsumexp(logits, dim=-1),)


def _chunk_log_probs_and_entropy(
    hidden: torch.Tensor, targets: torch.Tensor, output_layer: OutputLayer
) -> tuple[torch.Tensor, ...]:
    """(N, H), (N,) -> ((N,) log p(target), (N,) entropy without gradient)."""
    logits = _at_least_fp32(output_layer(hidden))
    log_z = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1)
    return picked - log_z, entropy


def _over_chunks(
    per_chunk: Callable[[torch.Tensor, torch.Tensor, OutputLayer], tuple[torch.Tensor, ...]],
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    chunk_tokens: int,
) -> list[torch.Tensor]:
    """Runs `per_chunk` on row slices of the flattened (B x T >= 1) positions; each output
    comes back as (B, T)."""
    batch, positions = targets.shape
    flat_hidden = hidden.reshape(batch * positions, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    differentiable = torch.is_grad_enabled() and hidden.requires_grad
    pieces: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, batch * positions, chunk_tokens):
        rows = slice(start, start + chunk_tokens)
        args = (flat_hidden[rows], flat_targets[rows], output_layer)
        if differentiable:
            pieces.append(checkpoint(per_chunk, *args, use_reentrant=False))
        else:
            pieces.append(per_chunk(*args))
    return [torch.cat(parts).view(batch, positions) for parts in zip(*pieces, strict=True)]


def next_token_log_probs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> torch.Tensor:
    """log p(targets[b, t] | hidden[b, t]), at least fp32. (B, T, H), (B, T) -> (B, T)."""
    (log_probs,) = _over_chunks(_chunk_log_probs, hidden, targets, output_layer, chunk_tokens)
    return log_probs


def next_token_log_probs_and_entropy(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As `next_token_log_probs`, plus each position's entropy (B, T), which carries no
    gradient (DAPO reports it; the loss has no entropy term)."""
    log_probs, entropy = _over_chunks(
        _chunk_log_probs_and_entropy, hidden, targets, output_layer, chunk_tokens
    )
    return log_probs, entropy

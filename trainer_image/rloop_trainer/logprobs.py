"""Next-token log-probabilities (and entropies) from a policy's final hidden states.

The logits of a micro-batch are (tokens x vocabulary): at Qwen2.5's 151,936-token
vocabulary and 8,192 tokens that is 5 GB in fp32, and a log-softmax with its
backward makes several passes over it (bench/RESULTS.md, GPU section). Here the
output layer runs on `chunk_tokens` positions at a time and, when there is more than
one chunk, each is checkpointed, so only one chunk's logits exist at once, in forward
and in backward; the softmax is taken in fp32 when the model computes in a narrower type.

The distribution is softmax(logits / temperature): rollouts are sampled from it (vLLM
and transformers divide the logits by the temperature), so the policy update's
importance ratios and the rollouts' entropies must use it too (as verl's actor does).

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
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    temperature: float,
    entropy_sink: list[torch.Tensor] | None,
) -> torch.Tensor:
    """(N, H), (N,) -> (N,) log p(target). With a sink, the first call also appends the
    (N,) entropies, without gradient; the checkpoint's recompute in backward (same
    arguments, the sink now full) skips them."""
    logits = _at_least_fp32(output_layer(hidden)) / temperature
    log_z = torch.logsumexp(logits, dim=-1)
    if entropy_sink is not None and not entropy_sink:
        with torch.no_grad():  # in place: one (N, V) temporary, not two
            entropy_sink.append(log_z - torch.softmax(logits, dim=-1).mul_(logits).sum(dim=-1))
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z


def _over_chunks(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    temperature: float,
    chunk_tokens: int,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (B, T) and, if asked, entropies (B, T), from row slices of the flattened
    (B x T >= 1) positions."""
    batch, positions = targets.shape
    flat_hidden = hidden.reshape(batch * positions, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    # One chunk's logits are kept for backward anyway: recomputing them would only cost.
    checkpointed = (
        torch.is_grad_enabled() and hidden.requires_grad and len(flat_targets) > chunk_tokens
    )
    log_probs: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    for start in range(0, batch * positions, chunk_tokens):
        rows = slice(start, start + chunk_tokens)
        sink: list[torch.Tensor] | None = [] if with_entropy else None
        args = (flat_hidden[rows], flat_targets[rows], output_layer, temperature, sink)
        if checkpointed:
            log_probs.append(checkpoint(_chunk_log_probs, *args, use_reentrant=False))
        else:
            log_probs.append(_chunk_log_probs(*args))
        if sink is not None:
            entropies += sink  # filled by the forward call just made
    rows_log_probs = torch.cat(log_probs).view(batch, positions)
    if not with_entropy:
        return rows_log_probs, None
    return rows_log_probs, torch.cat(entropies).view(batch, positions)


def next_token_log_probs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    temperature: float,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> torch.Tensor:
    """log p(targets[b, t] | hidden[b, t]) at `temperature`, at least fp32.
    (B, T, H), (B, T) -> (B, T)."""
    log_probs, _ = _over_chunks(
        hidden, targets, output_layer, temperature, chunk_tokens, with_entropy=False
    )
    return log_probs


def next_token_log_probs_and_entropy(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    output_layer: OutputLayer,
    temperature: float,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As `next_token_log_probs`, plus each position's entropy (B, T), which carries no
    gradient (DAPO reports it; the loss has no entropy term)."""
    log_probs, entropy = _over_chunks(
        hidden, targets, output_layer, temperature, chunk_tokens, True
    )
    assert entropy is not None
    return log_probs, entropy

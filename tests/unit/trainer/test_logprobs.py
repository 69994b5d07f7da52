"""Chunked next-token log-probs and entropies against slow loops over full logits."""

from __future__ import annotations

import math

import pytest
import torch
from rloop_trainer.logprobs import next_token_log_probs, next_token_log_probs_and_entropy

BATCH, POSITIONS, HIDDEN, VOCAB = 2, 5, 4, 7


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(BATCH, POSITIONS, HIDDEN, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, VOCAB, (BATCH, POSITIONS), generator=generator)
    output_layer = torch.nn.Linear(HIDDEN, VOCAB, bias=False, dtype=torch.float64)
    with torch.no_grad():
        output_layer.weight.copy_(torch.randn(VOCAB, HIDDEN, generator=generator))
    return hidden, targets, output_layer


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 10, 64])
def test_log_probs_and_entropy_match_a_loop_for_any_chunk_size_at_the_temperature(
    chunk_tokens: int, temperature: float
) -> None:
    hidden, targets, output_layer = _inputs(0)

    log_probs, entropy = next_token_log_probs_and_entropy(
        hidden, targets, output_layer, temperature, chunk_tokens
    )

    for b in range(BATCH):
        for t in range(POSITIONS):
            row = [x / temperature for x in output_layer(hidden[b, t]).tolist()]
            log_z = math.log(sum(math.exp(x) for x in row))
            assert log_probs[b, t].item() == pytest.approx(row[targets[b, t]] - log_z)
            probabilities = [math.exp(x - log_z) for x in row]
            assert entropy[b, t].item() == pytest.approx(
                -sum(p * math.log(p) for p in probabilities)
            )


def test_log_probs_alone_equal_those_returned_with_the_entropy() -> None:
    hidden, targets, output_layer = _inputs(1)

    alone = next_token_log_probs(hidden, targets, output_layer, 0.7, chunk_tokens=3)
    with_entropy, _ = next_token_log_probs_and_entropy(hidden, targets, output_layer, 0.7, 4)

    torch.testing.assert_close(alone, with_entropy)


def test_gradients_equal_those_through_the_full_logits() -> None:
    hidden, targets, output_layer = _inputs(2)
    hidden.requires_grad_(True)
    weights = torch.randn(BATCH, POSITIONS, dtype=torch.float64)

    chunked = next_token_log_probs(hidden, targets, output_layer, 1.0, chunk_tokens=3)
    chunked = (chunked * weights).sum()
    chunked_grads = torch.autograd.grad(chunked, [hidden, output_layer.weight])
    full_logits = torch.log_softmax(output_layer(hidden), dim=-1)
    full = (full_logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * weights).sum()
    full_grads = torch.autograd.grad(full, [hidden, output_layer.weight])

    for got, expected in zip(chunked_grads, full_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_entropy_carries_no_gradient() -> None:
    hidden, targets, output_layer = _inputs(3)
    hidden.requires_grad_(True)

    log_probs, entropy = next_token_log_probs_and_entropy(hidden, targets, output_layer, 1.0, 4)

    assert log_probs.requires_grad
    assert not entropy.requires_grad


def test_bf16_models_get_fp32_log_probs() -> None:
    hidden, targets, output_layer = _inputs(4)
    reference = next_token_log_probs(hidden, targets, output_layer, 1.0)

    log_probs = next_token_log_probs(hidden.bfloat16(), targets, output_layer.bfloat16(), 1.0)

    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.double(), reference, atol=0.1, rtol=0.05)

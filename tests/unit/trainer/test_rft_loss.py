"""The RFT loss: response tokens are the only targets, summed for a global token mean."""

from __future__ import annotations

import numpy as np
import torch
from rloop_trainer.batches import collate
from rloop_trainer.sft_loss import response_nll_sum, target_tokens

PAD = 0


def slow_response_nll_sum(
    logits: torch.Tensor, input_ids: torch.Tensor, prompt_lengths: list[int]
) -> torch.Tensor:
    """Every real token after the prompt (never the first token) is a target."""
    total = torch.zeros((), dtype=torch.float64)
    for row, prompt_length in enumerate(prompt_lengths):
        for position in range(max(prompt_length, 1), input_ids.shape[1]):
            if input_ids[row, position] != PAD:
                log_probs = torch.log_softmax(logits[row, position - 1].double(), dim=-1)
                total -= log_probs[input_ids[row, position]]
    return total


def _target_log_probs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Entry t: log p(input_ids[:, t + 1]) under logits[:, t], as TrainEngine gives them."""
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    return log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def test_nll_sum_matches_a_token_by_token_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    prompts, responses = [[1, 2, 3], [7]], [[4, 5, 6], [8, 9]]
    batch = collate(prompts, responses, PAD, max_tokens=16)
    logits = torch.randn((2, batch.input_ids.shape[1], 11), generator=generator)

    fast = response_nll_sum(_target_log_probs(logits, batch.input_ids), batch.target_mask)

    slow = slow_response_nll_sum(logits, batch.input_ids, [len(p) for p in prompts])
    torch.testing.assert_close(fast.double(), slow, rtol=1e-5, atol=1e-6)


def test_prompt_tokens_carry_no_loss() -> None:
    prompt, response = [1, 2, 3, 4], [5, 6]
    batch = collate([prompt], [response], PAD, max_tokens=16)
    logits = torch.randn((1, 6, 11), requires_grad=True)

    nll = response_nll_sum(_target_log_probs(logits, batch.input_ids), batch.target_mask)
    (grad,) = torch.autograd.grad(nll, logits)

    # Positions 0..2 predict prompt tokens 1..3; position 5 predicts nothing.
    assert torch.count_nonzero(grad[0, : len(prompt) - 1]) == 0
    assert torch.count_nonzero(grad[0, -1]) == 0
    assert torch.count_nonzero(grad[0, len(prompt) - 1 : -1]) > 0


def test_target_token_count_agrees_with_the_collated_target_mask() -> None:
    examples = [
        ([1, 2, 3], [4, 5]),
        ([1] * 9, [4, 5]),  # prompt alone exceeds the cut: no targets
        ([], [4, 5, 6]),  # no prompt: the first token is not predicted
        ([1, 2], [4, 5, 6, 7, 8, 9]),
    ]
    for max_seq_tokens in (2, 4, 8):
        counts = target_tokens(
            np.array([len(p) for p, _ in examples]),
            np.array([len(r) for _, r in examples]),
            max_seq_tokens,
        )
        for (prompt, response), count in zip(examples, counts, strict=True):
            assert collate([prompt], [response], PAD, max_seq_tokens).target_tokens == count

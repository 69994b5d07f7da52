"""The RFT loss: response tokens are the only targets, summed for a global token mean."""

from __future__ import annotations

import numpy as np
import torch
from rloop_trainer.sft_loss import (
    ExpertExample,
    collate_sft_batch,
    response_nll_sum,
    target_tokens,
)

PAD = 0


def slow_response_nll_sum(
    logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor
) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for row in range(input_ids.shape[0]):
        for position in range(1, input_ids.shape[1]):
            if loss_mask[row, position]:
                log_probs = torch.log_softmax(logits[row, position - 1].double(), dim=-1)
                total -= log_probs[input_ids[row, position]]
    return total


def test_collate_marks_only_response_tokens_as_targets() -> None:
    examples = [ExpertExample([5, 6, 7], [8, 9]), ExpertExample([5], [3, 4, 2, 1])]

    batch = collate_sft_batch(examples, PAD, max_seq_tokens=16)

    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 3, 4, 2, 1]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch.loss_mask.int().tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]
    assert batch.response_tokens == 6


def test_collate_pads_on_the_right_and_pads_carry_no_loss() -> None:
    batch = collate_sft_batch([ExpertExample([5, 6], [7]), ExpertExample([5], [1])], PAD, 16)

    assert batch.input_ids.tolist() == [[5, 6, 7], [5, 1, PAD]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch.loss_mask.int().tolist() == [[0, 0, 1], [0, 1, 0]]


def test_collate_cuts_the_response_tail_at_max_seq_tokens() -> None:
    batch = collate_sft_batch([ExpertExample([5, 6, 7], [8, 9, 10, 11])], PAD, max_seq_tokens=5)

    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert batch.loss_mask.int().tolist() == [[0, 0, 0, 1, 1]]


def _target_log_probs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Entry t: log p(input_ids[:, t + 1]) under logits[:, t], as TrainEngine gives them."""
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    return log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def test_nll_sum_matches_a_token_by_token_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    examples = [ExpertExample([1, 2, 3], [4, 5, 6]), ExpertExample([7], [8, 9])]
    batch = collate_sft_batch(examples, PAD, 16)
    logits = torch.randn((2, batch.input_ids.shape[1], 11), generator=generator)

    fast = response_nll_sum(_target_log_probs(logits, batch.input_ids), batch.loss_mask)

    slow = slow_response_nll_sum(logits, batch.input_ids, batch.loss_mask)
    torch.testing.assert_close(fast.double(), slow, rtol=1e-5, atol=1e-6)


def test_prompt_tokens_carry_no_loss() -> None:
    prompt, response = [1, 2, 3, 4], [5, 6]
    batch = collate_sft_batch([ExpertExample(prompt, response)], PAD, 16)
    logits = torch.randn((1, 6, 11), requires_grad=True)

    nll = response_nll_sum(_target_log_probs(logits, batch.input_ids), batch.loss_mask)
    (grad,) = torch.autograd.grad(nll, logits)

    # Positions 0..2 predict prompt tokens 1..3; position 5 predicts nothing.
    assert torch.count_nonzero(grad[0, : len(prompt) - 1]) == 0
    assert torch.count_nonzero(grad[0, -1]) == 0
    assert torch.count_nonzero(grad[0, len(prompt) - 1 : -1]) > 0


def test_target_token_count_agrees_with_the_collated_loss_mask() -> None:
    examples = [
        ExpertExample([1, 2, 3], [4, 5]),
        ExpertExample([1] * 9, [4, 5]),  # prompt alone exceeds the cut: no targets
        ExpertExample([], [4, 5, 6]),  # no prompt: the first token is not predicted
        ExpertExample([1, 2], [4, 5, 6, 7, 8, 9]),
    ]
    for max_seq_tokens in (2, 4, 8):
        counts = target_tokens(
            np.array([len(e.prompt_token_ids) for e in examples]),
            np.array([len(e.response_token_ids) for e in examples]),
            max_seq_tokens,
        )
        for example, count in zip(examples, counts, strict=True):
            batch = collate_sft_batch([example], PAD, max_seq_tokens)
            assert batch.response_tokens == count

"""DAPO's formulas against slow, obvious loops written here."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from rloop_trainer.dapo_loss import (
    clipped_policy_loss,
    group_advantages,
    informative_groups,
    loss_sample_mask,
    token_mean,
)


def test_group_advantage_is_reward_minus_group_mean_over_group_std() -> None:
    rewards = torch.tensor([[1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, -1.0], [-1.0] * 4])
    eps = 1e-6

    advantages = group_advantages(rewards, eps)

    for g, group in enumerate(rewards.tolist()):
        mean, std = statistics.mean(group), statistics.stdev(group)
        for i, reward in enumerate(group):
            assert advantages[g, i].item() == pytest.approx((reward - mean) / (std + eps))


def test_an_all_equal_group_has_zero_advantage() -> None:
    advantages = group_advantages(torch.tensor([[0.5, 0.5, 0.5]]))

    assert torch.equal(advantages, torch.zeros(1, 3))


def _reference_token_loss(
    log_prob: float,
    old_log_prob: float,
    advantage: float,
    low: float,
    high: float,
    dual: float | None,
) -> tuple[float, bool]:
    ratio = math.exp(log_prob - old_log_prob)
    unclipped = -advantage * ratio
    clipped = -advantage * min(max(ratio, 1 - low), 1 + high)
    loss, active = max(unclipped, clipped), clipped > unclipped
    if dual is not None and advantage < 0 and loss > -advantage * dual:
        loss, active = -advantage * dual, True
    return loss, active


@pytest.mark.parametrize("dual_clip", [None, 3.0])
def test_clip_higher_loss_matches_a_per_token_loop(dual_clip: float | None) -> None:
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    old_log_probs = log_probs + 1.5 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    advantages = torch.tensor([1.0, -1.0, 0.5, -2.0], dtype=torch.float64)

    loss, clipped = clipped_policy_loss(log_probs, old_log_probs, advantages, 0.2, 0.28, dual_clip)

    for b in range(4):
        for t in range(6):
            expected, active = _reference_token_loss(
                log_probs[b, t].item(),
                old_log_probs[b, t].item(),
                advantages[b].item(),
                0.2,
                0.28,
                dual_clip,
            )
            assert loss[b, t].item() == pytest.approx(expected)
            assert bool(clipped[b, t]) == active


def test_clip_is_asymmetric_upper_bound_is_clip_high() -> None:
    old = torch.zeros(1, 1, dtype=torch.float64)
    far_above = torch.full((1, 1), math.log(2.0), dtype=torch.float64)

    loss, clipped = clipped_policy_loss(far_above, old, torch.tensor([1.0]), 0.2, 0.28)

    assert loss.item() == pytest.approx(-1.28)
    assert bool(clipped.item())


def test_token_mean_is_the_mean_over_every_response_token_of_the_batch() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

    mean = token_mean(values, mask, global_token_count=3)

    assert mean.item() == pytest.approx((1 + 2 + 4) / 3)


@pytest.mark.parametrize("ranks", [2, 3])
def test_token_mean_gradient_does_not_change_with_the_number_of_ranks(ranks: int) -> None:
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True)
    features = torch.randn(6, 5, 4, generator=generator, dtype=torch.float64)
    lengths = [5, 1, 3, 2, 4, 5]  # sequences of very different lengths
    mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(5)] for n in lengths])

    whole = token_mean(features @ weight, mask, float(mask.sum()))
    (whole_gradient,) = torch.autograd.grad(whole, weight)

    global_count = float(mask.sum())  # what the all-reduce of the shard counts gives
    shard_gradients = [
        torch.autograd.grad(
            token_mean(features[rank::ranks] @ weight, mask[rank::ranks], global_count), weight
        )[0]
        for rank in range(ranks)
    ]

    assert torch.allclose(sum(shard_gradients), whole_gradient)  # type: ignore[arg-type]


def test_dynamic_sampling_keeps_only_groups_with_mixed_correctness() -> None:
    correct = [[True, True], [False, True], [False, False], [True, False, True]]

    expected = [i for i, group in enumerate(correct) if len(set(group)) > 1]

    assert informative_groups(correct) == expected == [1, 3]


def test_overlong_filtering_masks_truncated_samples_only_when_enabled() -> None:
    truncated = [False, True, False]

    assert loss_sample_mask(truncated, overlong_filtering=True) == [True, False, True]
    assert loss_sample_mask(truncated, overlong_filtering=False) == [True, True, True]

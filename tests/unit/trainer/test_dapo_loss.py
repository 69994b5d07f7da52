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
    dual: float,
) -> tuple[float, bool]:
    ratio = math.exp(min(max(log_prob - old_log_prob, -20.0), 20.0))
    unclipped = -advantage * ratio
    clipped = -advantage * min(max(ratio, 1 - low), 1 + high)
    loss, active = max(unclipped, clipped), clipped > unclipped
    if advantage < 0 and loss > -advantage * dual:
        loss, active = -advantage * dual, True
    return loss, active


@pytest.mark.parametrize("dual_clip", [1.5, 3.0, 1e9])
def test_clip_higher_loss_matches_a_per_token_loop(dual_clip: float) -> None:
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

    loss, clipped = clipped_policy_loss(far_above, old, torch.tensor([1.0]), 0.2, 0.28, 3.0)

    assert loss.item() == pytest.approx(-1.28)
    assert bool(clipped.item())


def test_a_negative_advantage_loses_at_most_dual_clip_times_its_size() -> None:
    old = torch.zeros(1, 1, dtype=torch.float64)
    tenfold = torch.full((1, 1), math.log(10.0), dtype=torch.float64)

    loss, clipped = clipped_policy_loss(tenfold, old, torch.tensor([-0.5]), 0.2, 0.28, 3.0)

    assert loss.item() == pytest.approx(1.5)  # not 0.5 x 10
    assert bool(clipped.item())


@pytest.mark.parametrize("advantage", [-1.0, 1.0])
@pytest.mark.parametrize("log_ratio", [100.0, -100.0])
def test_an_extreme_log_ratio_gives_a_finite_loss_and_gradient_in_fp32(
    advantage: float, log_ratio: float
) -> None:
    log_probs = torch.full((1, 3), -1.0, requires_grad=True)
    old_log_probs = torch.full((1, 3), -1.0 - log_ratio)

    loss, _ = clipped_policy_loss(
        log_probs, old_log_probs, torch.tensor([advantage]), 0.2, 0.28, 3.0
    )
    (gradient,) = torch.autograd.grad(loss.sum(), log_probs)

    assert torch.isfinite(loss).all() and torch.isfinite(gradient).all()


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

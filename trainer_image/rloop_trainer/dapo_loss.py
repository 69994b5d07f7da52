"""DAPO's formulas as pure tensor functions (Yu et al. 2025, arXiv 2503.14476).

Shapes: G groups (prompts) of n samples; B sequences; T token positions.
No KL term and no entropy bonus, as in DAPO.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# verl's bound (core_algos.compute_policy_loss): exp(20) is large yet finite in fp32.
LOG_RATIO_BOUND = 20.0


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(r - mean_g) / (std_g + eps) within each group (DAPO eq. 9, GRPO's estimator).

    rewards: (G, n) -> advantages (G, n). std is the unbiased sample std, as in verl.
    """
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True)
    return (rewards - mean) / (std + eps)


def clipped_policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clip-higher PPO loss (DAPO eq. 10) with dual clip (Ye et al. 2020).

    loss_t = max(-A r_t, -A clip(r_t, 1 - clip_low, 1 + clip_high)), and for A < 0
    loss_t = min(loss_t, -A dual_clip). r_t = exp(log_probs - old_log_probs), the
    log-ratio clamped to +-LOG_RATIO_BOUND first as verl does: a token whose ratio
    overflows would otherwise give an infinite loss and gradient.
    log_probs, old_log_probs: (B, T); advantages: (B,) or (B, T).
    Returns (loss (B, T), clipped (B, T) bool: where a clip bound is the active term).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(log_probs)
    log_ratio = torch.clamp(log_probs - old_log_probs, -LOG_RATIO_BOUND, LOG_RATIO_BOUND)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    bound = -advantages * dual_clip
    dual_active = (advantages < 0) & (loss > bound)
    return torch.where(dual_active, bound, loss), (clipped > unclipped) | dual_active


def token_mean(values: torch.Tensor, mask: torch.Tensor, global_token_count: float) -> torch.Tensor:
    """Sum over this shard's response tokens / the GLOBAL response-token count (DAPO eq. 12).

    values, mask: (B, T). Summing this over shards gives the token mean of the whole
    batch, so the gradient does not depend on how sequences are split over ranks.
    """
    return (values * mask).sum() / max(global_token_count, 1.0)


def informative_groups(correct: Sequence[Sequence[bool]]) -> list[int]:
    """Indices of groups whose samples are not all right or all wrong (DAPO dynamic
    sampling): an all-equal group has zero advantage and only dilutes the batch."""
    return [index for index, group in enumerate(correct) if 0 < sum(group) < len(group)]


def loss_sample_mask(truncated: Sequence[bool], overlong_filtering: bool) -> list[bool]:
    """Which samples contribute to the loss: with overlong filtering, truncated responses
    are masked out (DAPO section 3.4) instead of being punished as wrong."""
    return [not (overlong_filtering and cut) for cut in truncated]

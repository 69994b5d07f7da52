"""DAPO's formulas as pure tensor functions (Yu et al. 2025, arXiv 2503.14476).

Shapes: G groups (prompts) of n samples; B sequences; T token positions.
No KL term and no entropy bonus, as in DAPO.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clip-higher PPO loss (DAPO eq. 10) with optional dual clip (Ye et al. 2020).

    loss_t = max(-A r_t, -A clip(r_t, 1 - clip_low, 1 + clip_high)); for A < 0 and a
    dual-clip bound c, loss_t = min(loss_t, -A c).
    log_probs, old_log_probs: (B, T); advantages: (B,) or (B, T).
    Returns (loss (B, T), clipped (B, T) bool: where a clip bound is the active term).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(log_probs)
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    clip_active = clipped > unclipped
    if dual_clip is not None:
        bound = -advantages * dual_clip
        dual_active = (advantages < 0) & (loss > bound)
        loss = torch.where(dual_active, bound, loss)
        clip_active = clip_active | dual_active
    return loss, clip_active


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

"""update_policy through a real DeepSpeed engine on CPU, against a slow per-token reference
written here with plain PyTorch: same gradient norms, same weights after each update."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.dapo_update import TrainSequence, update_policy
from rloop_trainer.training import build_trainer
from transformers import PreTrainedModel, Qwen2ForCausalLM

LR, WEIGHT_DECAY, WARMUP_STEPS = 1e-3, 0.1, 4
CONFIG = toy.dapo_config(
    lr=LR,
    weight_decay=WEIGHT_DECAY,
    warmup_steps=WARMUP_STEPS,
    grad_clip=1.0,
    micro_batch=2,
    zero_stage=2,
    bf16=False,
    prompts_per_step=2,
    updates_per_step=2,
    max_prompt_tokens=8,
    max_response_tokens=8,
    overlong_buffer=2,
    temperature=0.7,
    clip_low=0.2,
    clip_high=0.28,
    dual_clip=3.0,
)
MINI_BATCHES = [
    [
        TrainSequence([3, 4, 5], [6, 7, 1], 1.2),
        TrainSequence([3, 8], [9, 10, 11, 12, 1], -0.8),
        TrainSequence([4, 4, 5, 6], [7], -0.4),
    ],
    [
        TrainSequence([5, 9], [6, 6, 1], -1.5),
        TrainSequence([3, 4, 5, 6, 7], [8, 9], 0.9),
        TrainSequence([8], [9, 10, 11, 1], 0.6),
    ],
]


@pytest.fixture(scope="module")
def model() -> PreTrainedModel:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(toy.tiny_config(toy.build_tokenizer())).train(False)


def response_log_probs(model: PreTrainedModel, sequence: TrainSequence) -> list[torch.Tensor]:
    """log p(response token j | everything before it) at CONFIG.temperature, one by one."""
    ids = torch.tensor([sequence.prompt_ids + sequence.response_ids])
    logits = model(input_ids=ids).logits[0] / CONFIG.temperature
    picked = []
    for j, token in enumerate(sequence.response_ids):
        position = len(sequence.prompt_ids) + j - 1  # the position that predicts token j
        picked.append(torch.log_softmax(logits[position], dim=-1)[token])
    return picked


def token_loss(new: torch.Tensor, old: torch.Tensor, advantage: float) -> torch.Tensor:
    """DAPO eq. 10 for one token, with the dual clip and verl's log-ratio bound."""
    ratio = torch.exp(torch.clamp(new - old, -20.0, 20.0))
    loss = torch.maximum(
        -advantage * ratio,
        -advantage * torch.clamp(ratio, 1 - CONFIG.clip_low, 1 + CONFIG.clip_high),
    )
    if advantage < 0:
        loss = torch.minimum(loss, torch.tensor(-advantage * CONFIG.dual_clip))
    return loss


def reference_updates(
    model: PreTrainedModel, mini_batches: Sequence[Sequence[TrainSequence]], lr: float
) -> tuple[PreTrainedModel, list[float], list[float]]:
    """AdamW steps at `lr` on the token mean of each mini-batch; the ratios are against the
    policy that generated the rollouts (the model before the first update). Returns the
    policy, each update's gradient norm and each update's loss."""
    policy = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    with torch.no_grad():
        old = {id(s): response_log_probs(model, s) for batch in mini_batches for s in batch}
    norms, losses = [], []
    for batch in mini_batches:
        optimizer.zero_grad()
        tokens = sum(len(s.response_ids) for s in batch)
        loss = torch.zeros(())
        for sequence in batch:
            new = response_log_probs(policy, sequence)
            for new_j, old_j in zip(new, old[id(sequence)], strict=True):
                loss = loss + token_loss(new_j, old_j, sequence.advantage) / tokens
        loss.backward()  # type: ignore[no-untyped-call]
        losses.append(float(loss))
        norms.append(float(torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)))
        optimizer.step()
    return policy, norms, losses


def assert_same_weights(ours: PreTrainedModel, theirs: PreTrainedModel) -> None:
    for (name, mine), expected in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        # Adam moves each weight by about LR whatever its gradient's size: compare in LRs.
        torch.testing.assert_close(mine, expected, rtol=0, atol=LR * 0.02, msg=name)


@pytest.mark.parametrize("updates", [1, 2])
def test_update_policy_equals_a_per_token_reference(model: PreTrainedModel, updates: int) -> None:
    trainer = build_trainer(copy.deepcopy(model), CONFIG, total_steps=10)
    trainer.set_schedule_step(WARMUP_STEPS)  # past the warm-up

    stats = update_policy(trainer, MINI_BATCHES[:updates], CONFIG, pad_token_id=0)

    expected, norms, losses = reference_updates(model, MINI_BATCHES[:updates], LR)
    assert stats["updates"] == updates and stats["skipped_updates"] == 0
    assert stats["grad_norm"] == pytest.approx(sum(norms) / len(norms), rel=1e-4)
    assert stats["pg_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-4, abs=1e-7)
    assert_same_weights(trainer.module, expected)


def test_every_update_of_an_rl_step_takes_that_steps_warm_up_rate(model: PreTrainedModel) -> None:
    trainer = build_trainer(copy.deepcopy(model), CONFIG, total_steps=10)
    trainer.set_schedule_step(1)  # the second RL step: 2/4 of the rate, for both updates

    update_policy(trainer, MINI_BATCHES, CONFIG, pad_token_id=0)

    assert trainer.lr == pytest.approx(LR * 2 / WARMUP_STEPS)
    expected, _, _ = reference_updates(model, MINI_BATCHES, LR * 2 / WARMUP_STEPS)
    assert_same_weights(trainer.module, expected)


def test_an_update_with_a_non_finite_gradient_is_skipped_and_counted(
    model: PreTrainedModel,
) -> None:
    trainer = build_trainer(copy.deepcopy(model), CONFIG, total_steps=10)
    poisoned = [[TrainSequence([3, 4], [5, 6], float("nan"))], MINI_BATCHES[1]]

    stats = update_policy(trainer, poisoned, CONFIG, pad_token_id=0)

    assert stats["updates"] == 2 and stats["skipped_updates"] == 1
    assert stats["grad_norm"] > 0 and stats["grad_norm"] < float("inf")  # the applied one
    for name, weight in trainer.module.named_parameters():
        assert torch.isfinite(weight).all(), name

"""TrainEngine's next-token statistics, through a real DeepSpeed engine on CPU, against the
log-softmax of the same model's full logits."""

from __future__ import annotations

import copy

import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.batches import collate
from rloop_trainer.training import TrainEngine, build_trainer
from transformers import PreTrainedModel, Qwen2ForCausalLM

PROMPTS = [[3, 4, 5], [6], [7, 8]]
RESPONSES = [[9, 10], [11, 12, 13, 14], [15]]


@pytest.fixture(scope="module")
def model() -> PreTrainedModel:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(toy.tiny_config(toy.build_tokenizer())).train(False)


@pytest.fixture(scope="module")
def trainer(model: PreTrainedModel) -> TrainEngine:
    """A world of one in this process, as the in-process DAPO tests use: build_trainer
    creates the process group, or joins the one an earlier test left (DeepSpeed keeps
    its groups once it has seen one, so nothing here destroys it)."""
    # ZeRO stage 1 leaves each fp32 gradient in param.grad until the step, where the test
    # compares it.
    config = toy.dapo_config(bf16=False, zero_stage=1)
    return build_trainer(copy.deepcopy(model), config, total_steps=1)


def _reference(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 log-probs and entropies (B, L-1) from the full logits."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    log_p = torch.log_softmax(logits.double(), dim=-1)
    picked = log_p.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked, -(log_p.exp() * log_p).sum(dim=-1)


def test_log_probs_and_entropy_equal_the_full_logits_on_every_real_position(
    model: PreTrainedModel, trainer: TrainEngine
) -> None:
    batch = collate(PROMPTS, RESPONSES, pad_token_id=0, max_tokens=16)
    input_ids, attention_mask = batch.input_ids, batch.attention_mask

    with torch.no_grad():
        log_probs, entropy = trainer.next_token_log_probs_and_entropy(
            input_ids, attention_mask, temperature=1.0
        )
        alone = trainer.next_token_log_probs(input_ids, attention_mask, temperature=1.0)

    expected_log_probs, expected_entropy = _reference(model, input_ids, attention_mask)
    real = attention_mask[:, 1:].bool()  # positions whose target is a real token
    torch.testing.assert_close(log_probs[real].double(), expected_log_probs[real])
    torch.testing.assert_close(entropy[real].double(), expected_entropy[real])
    torch.testing.assert_close(alone, log_probs)
    assert log_probs.shape == entropy.shape == (len(PROMPTS), input_ids.shape[1] - 1)


def test_the_log_probs_carry_the_gradient_of_the_full_logits(
    model: PreTrainedModel, trainer: TrainEngine
) -> None:
    batch = collate(PROMPTS, RESPONSES, pad_token_id=0, max_tokens=16)
    input_ids, attention_mask, response_mask = (
        batch.input_ids,
        batch.attention_mask,
        batch.target_mask,
    )
    reference = copy.deepcopy(model)
    trainer.module.zero_grad(set_to_none=True)

    log_probs = trainer.next_token_log_probs(input_ids, attention_mask, temperature=1.0)
    trainer.backward((log_probs * response_mask).sum())
    logits = reference(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    picked = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:].unsqueeze(-1))
    (picked.squeeze(-1) * response_mask).sum().backward()

    for (name, ours), theirs in zip(
        trainer.module.named_parameters(), reference.parameters(), strict=True
    ):
        assert ours.grad is not None, name
        torch.testing.assert_close(ours.grad, theirs.grad, msg=name)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_bf16_gradients_are_accumulated_and_reduced_in_fp32(
    model: PreTrainedModel, stage: int
) -> None:
    config = toy.dapo_config(bf16=True, zero_stage=stage)

    engine = build_trainer(copy.deepcopy(model).bfloat16(), config, total_steps=1).engine

    # What the engine's optimizer does, not what our dict asked: at stage 1 DeepSpeed picks
    # its BF16_Optimizer, which reduces through the engine; ZeRO-2/3 reduce themselves.
    optimizer = engine.optimizer
    if stage == 1:
        dtypes = (optimizer.grad_acc_dtype, engine.communication_data_type)
    else:
        dtypes = (optimizer.gradient_accumulation_dtype, optimizer.communication_data_type)
    assert engine.get_data_types()[0] == torch.bfloat16
    assert dtypes == (torch.float32, torch.float32)

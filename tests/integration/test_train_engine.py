"""TrainEngine's next-token statistics, through a real DeepSpeed engine on CPU, against the
log-softmax of the same model's full logits."""

from __future__ import annotations

import copy

import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.config import TrainingConfig
from rloop_trainer.training import TrainEngine, build_trainer, pad_sequences
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
    # ZeRO stage 0 leaves each gradient in param.grad, where the test compares it.
    config = TrainingConfig(bf16=False, zero_stage=0)
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
    input_ids, attention_mask, _ = pad_sequences(PROMPTS, RESPONSES, pad_token_id=0)

    with torch.no_grad():
        log_probs, entropy = trainer.next_token_log_probs_and_entropy(input_ids, attention_mask)
        alone = trainer.next_token_log_probs(input_ids, attention_mask)

    expected_log_probs, expected_entropy = _reference(model, input_ids, attention_mask)
    real = attention_mask[:, 1:].bool()  # positions whose target is a real token
    torch.testing.assert_close(log_probs[real].double(), expected_log_probs[real])
    torch.testing.assert_close(entropy[real].double(), expected_entropy[real])
    torch.testing.assert_close(alone, log_probs)
    assert log_probs.shape == entropy.shape == (len(PROMPTS), input_ids.shape[1] - 1)


def test_the_log_probs_carry_the_gradient_of_the_full_logits(
    model: PreTrainedModel, trainer: TrainEngine
) -> None:
    input_ids, attention_mask, response_mask = pad_sequences(PROMPTS, RESPONSES, pad_token_id=0)
    reference = copy.deepcopy(model)
    trainer.module.zero_grad(set_to_none=True)

    log_probs = trainer.next_token_log_probs(input_ids, attention_mask)
    trainer.backward((log_probs * response_mask).sum())
    logits = reference(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    picked = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:].unsqueeze(-1))
    (picked.squeeze(-1) * response_mask).sum().backward()

    for (name, ours), theirs in zip(
        trainer.module.named_parameters(), reference.parameters(), strict=True
    ):
        assert ours.grad is not None, name
        torch.testing.assert_close(ours.grad, theirs.grad, msg=name)

"""Pure pieces of the training path: padding and masks, warm-up, the DeepSpeed config."""

from __future__ import annotations

from rloop_trainer.config import TrainingConfig
from rloop_trainer.training import deepspeed_config, pad_sequences, warmup_factor


def test_response_mask_marks_exactly_the_positions_that_predict_response_tokens() -> None:
    prompts, responses = [[5, 6, 7], [8]], [[9, 2], [10, 11, 2]]

    input_ids, attention_mask, response_mask = pad_sequences(prompts, responses, pad_token_id=0)

    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequence = prompt + response
        assert input_ids[row, : len(sequence)].tolist() == sequence
        assert attention_mask[row].tolist() == [1] * len(sequence) + [0] * (5 - len(sequence))
        for position in range(input_ids.shape[1] - 1):
            target_is_response = len(prompt) <= position + 1 < len(sequence)
            assert bool(response_mask[row, position]) == target_is_response


def test_warm_up_is_linear_then_flat() -> None:
    assert [warmup_factor(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_deepspeed_config_carries_stage_clipping_and_torch_adam() -> None:
    config = deepspeed_config(TrainingConfig(zero_stage=3, grad_clip=0.5, micro_batch=2), False)

    assert config["zero_optimization"] == {"stage": 3}
    assert config["gradient_clipping"] == 0.5
    assert config["optimizer"]["params"]["torch_adam"] is True
    assert config["managed_gradient_accumulation"] is False
    assert config["bf16"] == {"enabled": False}
    assert config["train_micro_batch_size_per_gpu"] == 2

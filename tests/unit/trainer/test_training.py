"""Pure pieces of the training path: warm-up and the DeepSpeed config."""

from __future__ import annotations

from rloop_trainer import toy
from rloop_trainer.training import deepspeed_config, warmup_factor


def test_warm_up_is_linear_then_flat() -> None:
    assert [warmup_factor(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_deepspeed_config_carries_stage_clipping_and_torch_adam() -> None:
    config = deepspeed_config(
        toy.dapo_config(zero_stage=3, grad_clip=0.5, micro_batch=2, weight_decay=0.05), False
    )

    assert config["zero_optimization"] == {"stage": 3}
    assert config["gradient_clipping"] == 0.5
    assert config["optimizer"]["params"]["torch_adam"] is True
    assert config["optimizer"]["params"]["weight_decay"] == 0.05
    assert config["managed_gradient_accumulation"] is False
    assert config["bf16"]["enabled"] is False
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert "scheduler" not in config  # the phases set the rate per phase step

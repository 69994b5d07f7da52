"""`python -m tests.integration.dapo_update_ranks OUT` (or under torchrun): the DAPO updates of
one step on fixed data, on however many ranks it is launched with; rank 0 saves the
gathered weights and the update's metrics to OUT. test_dapo_phase compares worlds."""

from __future__ import annotations

import random
import sys

import torch
from rloop_trainer import dist, toy
from rloop_trainer.dapo_update import TrainSequence, update_policy
from rloop_trainer.training import build_trainer
from transformers import Qwen2ForCausalLM

CONFIG = toy.dapo_config(
    lr=1e-3,
    micro_batch=2,
    zero_stage=2,
    bf16=False,
    prompts_per_step=2,
    updates_per_step=2,
    max_prompt_tokens=8,
    max_response_tokens=8,
    overlong_buffer=2,
    temperature=0.8,
)


def mini_batches() -> list[list[TrainSequence]]:
    """Two mini-batches of 5 sequences (shares of 3 and 2 on two ranks) of varied lengths."""
    rng = random.Random(0)
    return [
        [
            TrainSequence(
                [rng.randint(3, 14) for _ in range(rng.randint(1, 8))],
                [rng.randint(3, 14) for _ in range(rng.randint(1, 8))],
                rng.uniform(-2.0, 2.0),
            )
            for _ in range(5)
        ]
        for _ in range(2)
    ]


def main(output: str) -> None:
    dist.init_distributed(CONFIG.collective_timeout)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(toy.tiny_config(toy.build_tokenizer()))
    trainer = build_trainer(model, CONFIG, total_steps=1)
    trainer.set_schedule_step(0)
    stats = update_policy(trainer, mini_batches(), CONFIG, pad_token_id=0)
    weights = trainer.gathered_state_dict()
    if dist.is_main():
        torch.save({"weights": weights, "stats": stats}, output)
    dist.barrier()
    dist.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])

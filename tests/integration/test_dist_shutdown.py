"""One process may run phases one after another (the in-process tests do): after
`dist.shutdown()` a new process group serves a new DeepSpeed engine. Run in a child
process, since it destroys the process group of whatever process runs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TWO_ENGINES_WITH_A_SHUTDOWN_BETWEEN = textwrap.dedent(
    """
    import copy
    from rloop_trainer import dist, toy
    from rloop_trainer.batches import collate
    from rloop_trainer.training import build_trainer
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(toy.tiny_config(toy.build_tokenizer()))
    config = toy.dapo_config(bf16=False, zero_stage=1)
    batch = collate([[3, 4, 5]], [[9, 10]], pad_token_id=0, max_tokens=16)
    for engine in ("first", "second"):
        trainer = build_trainer(copy.deepcopy(model), config, total_steps=1)
        trainer.next_token_log_probs(batch.input_ids, batch.attention_mask, temperature=1.0)
        print(engine, "engine ran")
        dist.shutdown()
    """
)


def test_a_deepspeed_engine_built_after_a_shutdown_runs() -> None:
    child = subprocess.run(
        [sys.executable, "-c", TWO_ENGINES_WITH_A_SHUTDOWN_BETWEEN],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.splitlines()[-2:] == ["first engine ran", "second engine ran"]

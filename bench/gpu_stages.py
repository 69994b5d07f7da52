"""The GPU bench's stages, each run in its own process by gpu.py."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpu_common import (
    PROMPT_TOKENS,
    ROLLOUT_GROUP,
    ROLLOUT_NEW_TOKENS,
    ROLLOUT_PROMPT_TOKENS,
    ROLLOUT_PROMPTS,
    SEQUENCE_TOKENS,
    GiB,
    Result,
    batch_sequences,
    build_model,
    cuda_seconds,
    device,
    gpu_used_gib,
    guarded,
    log_prob_gap,
    mfu,
    parameter_count,
    peak_allocated_gib,
    random_ids,
    save_policy,
    vocab_size,
    wide_policy,
)


def stage_peaks(work: Path, shape: str) -> Result:
    """The two ceilings measured here: bf16 matmul FLOP/s and device-copy bytes/s."""
    import torch

    result: Result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    }
    size = 8192 if torch.cuda.is_available() else 512
    a, b = (torch.randn(size, size, dtype=torch.bfloat16, device=device()) for _ in range(2))
    source = torch.randn(2**28 if torch.cuda.is_available() else 2**20, device=device())
    target = torch.empty_like(source)
    for _ in range(3):
        a @ b, target.copy_(source)
    matmul_s, _ = cuda_seconds(lambda: [a @ b for _ in range(10)])
    copy_s, _ = cuda_seconds(lambda: [target.copy_(source) for _ in range(10)])
    result["matmul_tflops"] = round(10 * 2 * size**3 / matmul_s / 1e12, 1)
    result["copy_tb_s"] = round(10 * 2 * source.numel() * 4 / copy_s / 1e12, 3)
    return result


def rollout_engines(
    policy_dir: Path, tokenizer: Any
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Builders of the trainer's two engines over the same policy."""
    import torch
    from rloop_trainer.rollout.hf import HFEngine
    from rloop_trainer.rollout.vllm import VLLMEngine
    from transformers import AutoModelForCausalLM

    def vllm() -> Any:
        max_len = ROLLOUT_PROMPT_TOKENS + ROLLOUT_NEW_TOKENS
        return VLLMEngine.launch(str(policy_dir), tokenizer, max_model_len=max_len, seed=0)

    def hf() -> Any:
        model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.bfloat16)
        return HFEngine(model.to(device()), tokenizer, max_batch=256)

    return vllm, hf


def measure_engine(engine: Any, prompts: list[list[int]], result: Result, name: str) -> None:
    from rloop_trainer.rollout.base import SamplingSpec

    spec = SamplingSpec(
        n=ROLLOUT_GROUP, temperature=1.0, top_p=1.0, max_tokens=ROLLOUT_NEW_TOKENS, seed=0
    )
    engine.generate(prompts[:2], spec)  # warm-up
    seconds, groups = cuda_seconds(lambda: engine.generate(prompts, spec))
    tokens = sum(len(c.token_ids) for group in groups for c in group)
    result[f"{name}_tokens_per_s"] = round(tokens / seconds)
    result[f"{name}_generated_tokens"] = tokens


def sleep_and_wake(engine: Any, result: Result) -> None:
    """Time a sleep/wake cycle and leave the engine asleep (its memory freed)."""
    result["vllm_sleep_s"] = round(cuda_seconds(engine.sleep)[0], 2)
    result["used_gib_vllm_asleep"] = gpu_used_gib()
    result["vllm_wake_s"] = round(cuda_seconds(engine.wake)[0], 2)
    engine.sleep()


def stage_rollout(work: Path, shape: str) -> Result:
    from transformers import AutoTokenizer

    policy_dir = wide_policy(work, shape)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    prompts = random_ids(ROLLOUT_PROMPTS, ROLLOUT_PROMPT_TOKENS, vocab_size(shape), seed=1)
    parameters = parameter_count(policy_dir)
    result: Result = {
        "parameters": parameters,
        "sequences": ROLLOUT_PROMPTS * ROLLOUT_GROUP,
        "new_tokens": ROLLOUT_NEW_TOKENS,
        "used_gib_before": gpu_used_gib(),
    }
    launch_vllm, launch_hf = rollout_engines(policy_dir, tokenizer)
    launched = guarded(result, "vllm_launch", lambda: cuda_seconds(launch_vllm))
    if launched is not None:
        result["vllm_launch_s"], engine = round(launched[0], 1), launched[1]
        result["used_gib_vllm_awake"] = gpu_used_gib()
        guarded(result, "vllm", lambda: measure_engine(engine, prompts, result, "vllm"))
        guarded(result, "vllm_sleep", lambda: sleep_and_wake(engine, result))
    hf_engine = guarded(result, "hf_launch", launch_hf)
    if hf_engine is not None:
        guarded(result, "hf", lambda: measure_engine(hf_engine, prompts, result, "hf"))
    result["weight_gib_bf16"] = round(parameters * 2 / GiB, 3)
    return result


def synthetic_sequences(count: int, vocab: int) -> list[Any]:
    """DAPO training sequences of SEQUENCE_TOKENS tokens with advantages of both signs."""
    from rloop_trainer.dapo_update import TrainSequence

    ids = random_ids(count, SEQUENCE_TOKENS, vocab, seed=2)
    return [
        TrainSequence(row[:PROMPT_TOKENS], row[PROMPT_TOKENS:], 1.0 - 2 * (i % 2))
        for i, row in enumerate(ids)
    ]


def policy_update_seconds(policy_dir: Path, sequences: list[Any], micro_batch: int) -> float:
    """Median seconds of the trainer's DAPO update (DeepSpeed) over the sequences."""
    import torch
    from rloop_trainer import toy
    from rloop_trainer.dapo_update import update_policy
    from rloop_trainer.policy import load_policy
    from rloop_trainer.training import build_trainer

    config = toy.dapo_config(policy_uri=str(policy_dir), lr=1e-6, micro_batch=micro_batch)
    model, tokenizer = load_policy(str(policy_dir), torch.float32, device())
    trainer = build_trainer(model, config, total_steps=4)
    pad_token_id = int(tokenizer.pad_token_id)
    times = [
        cuda_seconds(lambda: update_policy(trainer, [sequences], config, pad_token_id))[0]
        for _ in range(3)
    ]
    return sorted(times)[1]


def plain_forward_backward_seconds(
    policy_dir: Path, sequences: list[Any], micro_batch: int
) -> float:
    """Median seconds of a plain transformers bf16 forward+backward over the same tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.bfloat16).to(device())
    rows = torch.tensor([s.prompt_ids + s.response_ids for s in sequences], device=device())

    def one_pass() -> None:
        for start in range(0, len(rows), micro_batch):
            batch = rows[start : start + micro_batch]
            model(input_ids=batch, labels=batch).loss.backward()

    times = [cuda_seconds(one_pass)[0] for _ in range(3)]
    return sorted(times)[1]


def stage_update(work: Path, shape: str) -> Result:
    import torch

    policy_dir = wide_policy(work, shape)
    parameters = parameter_count(policy_dir)
    micro_batch = 4 if torch.cuda.is_available() else 2
    sequences_per_update = batch_sequences(shape)
    sequences = synthetic_sequences(sequences_per_update, vocab_size(shape))
    tokens = sequences_per_update * SEQUENCE_TOKENS
    result: Result = {
        "parameters": parameters,
        "tokens_per_update": tokens,
        "micro_batch": micro_batch,
    }
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    ours = result["update_s"] = guarded(
        result, "update_s", lambda: policy_update_seconds(policy_dir, sequences, micro_batch)
    )
    result["update_peak_gib"] = peak_allocated_gib()
    gc.collect()  # the DeepSpeed engine holds reference cycles
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    plain = result["plain_fwd_bwd_s"] = guarded(
        result,
        "plain_fwd_bwd_s",
        lambda: plain_forward_backward_seconds(policy_dir, sequences, micro_batch),
    )
    result["plain_peak_gib"] = peak_allocated_gib()
    if ours:
        result["update_mfu"] = round(mfu(parameters, tokens, ours), 4)
    if plain:
        result["plain_mfu"] = round(mfu(parameters, tokens, plain), 4)
    return result


def write_expert_set(uri_path: Path, rows: int, vocab: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rloop_trainer.schema import EXPERT_SCHEMA

    ids = random_ids(rows, SEQUENCE_TOKENS, vocab, seed=3)
    columns = {
        "prompt_id": [f"p{i}" for i in range(rows)],
        "prompt": ["-"] * rows,
        "response": ["-"] * rows,
        "prompt_token_ids": [r[:PROMPT_TOKENS] for r in ids],
        "response_token_ids": [r[PROMPT_TOKENS:] for r in ids],
        "prompt_success_rate": [0.05] * rows,
        "step": [1] * rows,
        "sample_index": [0] * rows,
    }
    pq.write_table(pa.table(columns, schema=EXPERT_SCHEMA), uri_path)


def stage_rft(work: Path, shape: str, steps: int = 4) -> Result:
    import torch
    from rloop_trainer import rft
    from rloop_trainer.config import RftPhaseConfig
    from rloop_trainer.training import UpdateOutcome

    policy_dir = wide_policy(work, shape)
    run_dir = work / f"rft-{shape}-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    batch_size = batch_sequences(shape) // 2
    write_expert_set(run_dir / "expert.parquet", batch_size * steps, vocab_size(shape))
    micro_batch = 4 if torch.cuda.is_available() else 2
    config = RftPhaseConfig(
        policy_uri=str(policy_dir),
        expert_uri=str(run_dir / "expert.parquet"),
        output_uri=str(run_dir / "policy"),
        checkpoint_uri=str(run_dir / "checkpoints"),
        max_seq_tokens=SEQUENCE_TOKENS,
        batch_size=batch_size,
        checkpoint_every=1000,
        lr=1e-5,
        micro_batch=micro_batch,
    )
    step_seconds: list[float] = []
    train_step = rft.train_step

    def timed_step(*args: Any, **kwargs: Any) -> tuple[float, UpdateOutcome]:
        seconds, outcome = cuda_seconds(lambda: train_step(*args, **kwargs))
        step_seconds.append(seconds)
        return outcome

    rft.train_step = timed_step  # instrumentation only: the phase runs unchanged
    phase_s, _ = cuda_seconds(lambda: rft.run_rft_phase(config))
    parameters = parameter_count(policy_dir)
    steady = sorted(step_seconds[1:])[len(step_seconds[1:]) // 2]  # the first step warms up
    tokens = batch_size * SEQUENCE_TOKENS
    return {
        "parameters": parameters,
        "steps": len(step_seconds),
        "tokens_per_step": tokens,
        "phase_s": round(phase_s, 1),
        "step_s": round(steady, 3),
        "rft_mfu": round(mfu(parameters, tokens, steady), 4),
        "peak_gib": peak_allocated_gib(),
        "wrote_policy": (run_dir / "policy" / "config.json").exists(),
    }


def toy_policy(work: Path, shape: str, warm_start_steps: int = 150) -> tuple[Path, Path]:
    """A `shape` model with the toy tokenizer, warm-started on correct sums so its success
    rate lies strictly between 0 and 1 (DAPO keeps only such groups); and the prompts."""
    import torch
    from rloop_trainer import toy

    directory, prompts = work / f"toy-policy-{shape}", work / "toy-prompts.parquet"
    if (directory / "config.json").exists():
        return directory, prompts
    tokenizer = toy.build_tokenizer()
    model = build_model(shape, tokenizer)
    problems = toy.make_problems("train", 300, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for step in range(warm_start_steps):
        input_ids, labels = toy.sft_batch(tokenizer, problems[(step * 64) % 300 :][:64])
        with torch.autocast(device().type, dtype=torch.bfloat16):
            loss = model(input_ids=input_ids.to(device()), labels=labels.to(device())).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_policy(model, tokenizer, directory)
    toy.write_prompts(problems, str(prompts))
    return directory, prompts


def dapo_config(work: Path, shape: str, steps: int) -> Any:
    from rloop_trainer import toy

    policy_dir, prompts = toy_policy(work, shape)
    return toy.dapo_config(
        str(work / f"dapo-{shape}"),
        policy_uri=str(policy_dir),
        train_data_uri=str(prompts),
        steps=steps,
        group_size=16,
        prompts_per_step=64,
        max_prompt_tokens=16,
        max_response_tokens=48,
        overlong_buffer=16,
        checkpoint_every=2,
        updates_per_step=1,  # one update and one generation round a step, as first measured
        oversample=1,
        engine="auto",
        # a large rate, so the weights after a sync differ measurably from the start
        lr=1e-4,
        micro_batch=64,
    )


def trainer_log_probs(
    model: Any, prompts: list[list[int]], responses: list[list[int]]
) -> list[list[float]]:
    """Teacher-forced log-probs of each response token under `model`: [sequence][token]."""
    import torch

    rows = []
    with torch.no_grad():
        for prompt, response in zip(prompts, responses, strict=True):
            ids = torch.tensor([prompt + response], device=device())
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            picked = log_probs[len(prompt) - 1 :].gather(-1, ids[0, len(prompt) :, None])
            rows.append(picked[:, 0].tolist())
    return rows


def sync_check(phase: Any, start_policy: str, count: int = 32) -> Result:
    """After the phase's last weight sync: vLLM's log-probs of its own samples vs those of
    the trainer's current weights (must agree) and of the starting weights (must not)."""
    import torch
    from transformers import AutoModelForCausalLM
    from vllm import SamplingParams

    prompts = [task.token_ids for task in phase.tasks[:count]]
    phase.engine.wake()
    params = SamplingParams(n=1, temperature=1.0, max_tokens=24, logprobs=0, seed=7)
    outputs = phase.engine.llm.generate(
        [{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False
    )
    samples = [output.outputs[0] for output in outputs]
    responses = [list(s.token_ids) for s in samples]
    engine = [
        [lp[t].logprob for lp, t in zip(s.logprobs, r, strict=True)]
        for s, r in zip(samples, responses, strict=True)
    ]
    start = AutoModelForCausalLM.from_pretrained(start_policy, dtype=torch.bfloat16).to(device())
    return {
        "vs_trained": log_prob_gap(
            engine, trainer_log_probs(phase.trainer.module, prompts, responses)
        ),
        "vs_start": log_prob_gap(engine, trainer_log_probs(start, prompts, responses)),
    }


def stage_dapo_run(work: Path, shape: str, steps: int = 4) -> Result:
    """One DAPO process (killed or resumed by stage_dapo); scoring time is recorded apart."""
    import torch
    from rloop_trainer import dapo, reward
    from rloop_trainer.dapo_update import update_policy

    config = dapo_config(work, shape, steps)
    score_seconds: list[float] = []
    train_used_gib: list[float] = []
    score_correct = reward.score_correct

    def timed_score(answers: Sequence[str | None], ground_truths: Sequence[str]) -> list[bool]:
        seconds, verdicts = cuda_seconds(lambda: score_correct(answers, ground_truths))
        score_seconds.append(seconds)
        return verdicts

    def watched_update(*args: Any) -> dict[str, float]:
        stats = update_policy(*args)
        train_used_gib.append(gpu_used_gib())
        return stats

    # Instrumentation only: the phase runs unchanged, these record what it does.
    reward.score_correct = timed_score
    setattr(dapo, "update_policy", watched_update)  # noqa: B010 - not re-exported by dapo
    phase = dapo.DapoPhase(config)
    phase.run()
    result: Result = {
        "score_s_total": round(sum(score_seconds), 3),
        "used_gib_training_max": max(train_used_gib, default=0.0),
        "peak_allocated_gib": peak_allocated_gib(),
        "engine": type(phase.engine).__name__,
    }
    if result["engine"] == "VLLMEngine":
        result["sync_check"] = guarded(
            result, "sync_check", lambda: sync_check(phase, config.policy_uri)
        )
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return result


# ---- orchestration (the parent process never imports torch) ----------------------------

CHILD_STAGES: dict[str, Callable[[Path, str], Result]] = {
    "peaks": stage_peaks,
    "rollout": stage_rollout,
    "update": stage_update,
    "rft": stage_rft,
    "dapo-run": stage_dapo_run,
}

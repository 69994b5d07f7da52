"""Shared by the GPU bench's stages: constants, formulas and model builders (see gpu.py)."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

PEAK_BF16_FLOPS = 989e12  # H100 SXM dense bf16 (datasheet), the MFU denominator
DATASHEET_HBM_BYTES_PER_S = 3.35e12
WIDE_VOCAB = 151936  # Qwen2.5's vocabulary: the LM head is a real share of the FLOPs
SEQUENCES_PER_BATCH = 64  # 2048-token sequences per policy update / 2 per RFT step
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
    ),
    "1.5b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
    ),
}
STAGES = ("peaks", "rollout", "update", "rft", "dapo")
SEQUENCE_TOKENS, PROMPT_TOKENS = 2048, 256
# 64 x 16 = 1,024 sequences: what vLLM runs at once by default on an H100 (max_num_seqs)
ROLLOUT_PROMPTS, ROLLOUT_GROUP, ROLLOUT_PROMPT_TOKENS, ROLLOUT_NEW_TOKENS = 64, 16, 128, 256
GiB = 2**30
Result = dict[str, Any]
T = TypeVar("T")


# ---- formulas -------------------------------------------------------------------------


def model_flops(parameters: int, tokens: int) -> float:
    """Training FLOPs of `tokens` tokens: 6 per parameter per token (forward 2, backward 4);
    attention's sequence-length term is left out, as in the usual MFU definition."""
    return 6.0 * parameters * tokens


def mfu(parameters: int, tokens: int, seconds: float, peak: float = PEAK_BF16_FLOPS) -> float:
    return model_flops(parameters, tokens) / seconds / peak


def decode_bound_tokens_per_s(weight_bytes: int, bytes_per_s: float, batch: int) -> float:
    """Upper bound on decode throughput if every step must read all weights once:
    one step costs weight_bytes / bandwidth and yields one token per sequence."""
    return batch * bytes_per_s / weight_bytes


def log_prob_gap(reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]]) -> Result:
    """Mean and max |difference| over aligned per-token log-probs of several sequences."""
    gaps = [
        abs(a - b)
        for ref, oth in zip(reference, other, strict=True)
        for a, b in zip(ref, oth, strict=True)
    ]
    return {
        "mean_abs": sum(gaps) / max(len(gaps), 1),
        "max_abs": max(gaps, default=0.0),
        "tokens": len(gaps),
    }


# ---- shared setup (runs inside a stage's process) --------------------------------------


def gpu_used_gib() -> float:
    import torch

    if not torch.cuda.is_available():
        return 0.0
    free, total = torch.cuda.mem_get_info()
    return round((total - free) / GiB, 2)


def peak_allocated_gib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / GiB, 2) if torch.cuda.is_available() else 0.0


def device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def wide_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer with `vocab` ids ("t<id>"), so a Qwen-vocabulary model has a
    real tokenizer for vLLM and the trainer without downloading one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<eos>": 1, "<unk>": 2} | {f"t{i}": i for i in range(3, vocab)}
    tokenizer = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_model(shape: str, tokenizer: Any) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **SHAPES[shape],
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with device():
        return Qwen2ForCausalLM(config)


def save_policy(model: Any, tokenizer: Any, directory: Path) -> None:
    import torch

    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(torch.bfloat16).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def vocab_size(shape: str) -> int:
    """Qwen2.5's vocabulary, except for the CPU smoke shape."""
    return 4096 if shape == "tiny" else WIDE_VOCAB


def batch_sequences(shape: str) -> int:
    return 4 if shape == "tiny" else SEQUENCES_PER_BATCH


def wide_policy(work: Path, shape: str) -> Path:
    """The random-init Qwen2.5-shaped policy directory (built once per work dir)."""
    directory = work / f"policy-{shape}"
    if not (directory / "config.json").exists():
        import torch

        tokenizer = wide_tokenizer(vocab_size(shape))
        save_policy(build_model(shape, tokenizer), tokenizer, directory)
        torch.cuda.empty_cache()  # the stage's memory figures start from an empty device
    return directory


def parameter_count(policy_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for shard in policy_dir.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as tensors:
            total += sum(math.prod(tensors.get_slice(k).get_shape()) for k in tensors.keys())  # noqa: SIM118
    return total


def random_ids(rows: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (rows, length), generator=generator).tolist()


def guarded(result: Result, key: str, measure: Callable[[], T]) -> T | None:
    """Run one measurement; on failure record its exact error under `<key>_error`."""
    try:
        return measure()
    except Exception as exc:  # every failure is a finding to report
        result[f"{key}_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        traceback.print_exc()
        return None


def cuda_seconds(run: Callable[[], T]) -> tuple[float, T]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    value = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, value


# ---- stages (each runs in its own process) ---------------------------------------------

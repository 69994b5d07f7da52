"""A toy task for CPU tests, with nothing downloaded.

Problems are sums written as `12+7=`; the answer is `\\boxed{19}`. The tokenizer is
trained here with the `tokenizers` library (one token per character, plus one for
`\\boxed{`), and has no chat template: prompts are the problem text itself. The
model is a tiny Qwen2-shaped network. A short supervised warm start teaches the
answer format and a little arithmetic, so the success rate on the train split is
neither 0 nor 1 and RL has something to sharpen.

Each problem has exactly one correct response, which keeps the phase tests short and
fast; the demo runs on scratchpad_sums.py, a task with many correct solutions that
shares this tokenizer and model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedModel, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from rloop_trainer import store
from rloop_trainer.config import DapoPhaseConfig

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
BOXED = "\\boxed{"
TRAIN_OPERAND_MAX = 19
WARM_START_LR = 3e-3


# DAPO at the tiny model's size: short prompts and answers, the transformers engine, and
# one mini-batch per rank (tests override what they are about).
TINY_DAPO: dict[str, Any] = {
    "group_size": 4,
    "prompts_per_step": 8,
    "updates_per_step": 2,
    "max_prompt_tokens": 16,
    "max_response_tokens": 8,
    "overlong_buffer": 2,
    "engine": "hf",
    "lr": 1e-4,
    "micro_batch": 32,
}


@dataclass(frozen=True)
class ToyProblem:
    id: str
    problem: str
    answer: str


def response_text(answer: str) -> str:
    return f"{BOXED}{answer}}}"


def make_problems(split: Literal["train", "heldout"], count: int, seed: int) -> list[ToyProblem]:
    """Distinct sums: two operands in [0, 19] for train, three for the harder held-out split."""
    rng = random.Random(seed)
    operands = 2 if split == "train" else 3
    seen: dict[str, ToyProblem] = {}
    while len(seen) < count:
        terms = [rng.randint(0, TRAIN_OPERAND_MAX) for _ in range(operands)]
        problem = "+".join(map(str, terms)) + "="
        seen.setdefault(problem, ToyProblem(f"{split}-{len(seen):05d}", problem, str(sum(terms))))
    return list(seen.values())


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Train a character-level tokenizer on the toy task's alphabet."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"\\boxed\{|."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    corpus = ["0123456789+=", *(response_text(str(n)) for n in range(100))]
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, EOS, UNK])
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    wrapped: PreTrainedTokenizerFast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )
    return wrapped


def tiny_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    """A Qwen2-shaped model of about a hundred thousand parameters."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )


def sft_batch(
    tokenizer: PreTrainedTokenizerFast, problems: list[ToyProblem]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, labels) with labels only on the response and its EOS."""
    return padded_sft_batch(
        tokenizer, [(item.problem, response_text(item.answer)) for item in problems]
    )


def padded_sft_batch(
    tokenizer: PreTrainedTokenizerFast, examples: list[tuple[str, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt, response) texts -> right-padded (input_ids, labels), both (examples, width),
    with labels only on the response and its EOS."""
    rows = []
    for prompt_text, response in examples:
        prompt = tokenizer.encode(prompt_text)
        completion = [*tokenizer.encode(response), tokenizer.eos_token_id]
        rows.append((prompt + completion, [-100] * len(prompt) + completion))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for row, (ids, targets) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(targets)] = torch.tensor(targets)
    return input_ids, labels


def correct_answers(problems: list[ToyProblem], seed: int) -> Callable[[], list[tuple[str, str]]]:
    """Batches of up to 32 of `problems`, drawn at random, with their correct responses."""
    rng = random.Random(seed)

    def examples() -> list[tuple[str, str]]:
        batch = rng.sample(problems, min(32, len(problems)))
        return [(item.problem, response_text(item.answer)) for item in batch]

    return examples


def warm_start(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    examples: Callable[[], list[tuple[str, str]]],
    steps: int,
    lr: Callable[[int], float],
) -> None:
    """`steps` supervised AdamW steps, each on a batch of (prompt, response) texts that
    `examples` draws, at the rate `lr(step)` (plain AdamW: this is setup, not the product)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr(0))
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr(step)
        input_ids, labels = padded_sft_batch(tokenizer, examples())
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.train(False)


def trained_policy(
    directory: Path, seed: int, train: Callable[[PreTrainedModel, PreTrainedTokenizerFast], None]
) -> Path:
    """The toy tokenizer and a tiny model, trained by `train`, saved as an HF policy dir."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_config(tokenizer))
    train(model, tokenizer)
    return save_policy(model, tokenizer, directory)


def build_policy(directory: Path, warm_start_steps: int, seed: int = 0) -> Path:
    """A policy warm-started on correct answers of the train split, at a constant rate."""

    def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
        examples = correct_answers(make_problems("train", 200, seed), seed)
        warm_start(model, tokenizer, examples, warm_start_steps, lambda _: WARM_START_LR)

    return trained_policy(directory, seed, train)


def save_policy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, directory: Path
) -> Path:
    """An HF policy directory whose generation stops at the toy EOS."""
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_prompts(problems: list[ToyProblem], uri: str) -> None:
    """The plain `{id, problem, answer}` prompts parquet."""
    table = pa.table(
        {
            "id": [item.id for item in problems],
            "problem": [item.problem for item in problems],
            "answer": [item.answer for item in problems],
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.write_bytes(uri, sink.getvalue().to_pybytes())


def dapo_config(output_uri: str = "-", **settings: Any) -> DapoPhaseConfig:
    """A DAPO phase config writing under `output_uri` as the operator lays it out
    (trajectories/ and policy/ beside the checkpoints); `settings` are DapoPhaseConfig fields.
    The policy and the prompts default to "-", for tests that never read them."""
    uris = {
        "policy_uri": "-",
        "train_data_uri": "-",
        "trajectories_uri": f"{output_uri}/trajectories",
        "rl_policy_uri": f"{output_uri}/policy",
        "output_uri": output_uri,
    }
    return DapoPhaseConfig(**(uris | settings))

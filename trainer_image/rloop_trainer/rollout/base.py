"""The rollout interface: one engine generates, the trainer updates, weights flow back.

Every engine returns exactly `sampling.n` completions per prompt, in prompt order,
so `[prompt][sample]` indexes line up with the groups DAPO normalises over.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SamplingSpec:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class Completion:
    """One sampled response. `token_ids` include the EOS token when the model stopped;
    `truncated` means it hit `max_tokens` without stopping."""

    token_ids: list[int]
    text: str
    truncated: bool


def decode_responses(
    tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[list[int]]
) -> list[str]:
    """The text rewards are scored on, the same for every engine: special tokens (EOS,
    padding) dropped, one batched call."""
    return [str(text) for text in tokenizer.batch_decode(list(token_ids), skip_special_tokens=True)]


class RolloutEngine(Protocol):
    def generate(
        self, prompt_token_ids: Sequence[list[int]], sampling: SamplingSpec
    ) -> list[list[Completion]]:
        """Completions as [prompt][sample]: exactly `sampling.n` per prompt, in order."""
        ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights with the trainer's (HF parameter names)."""
        ...

    def sleep(self) -> None:
        """Free accelerator memory for training (weights may be dropped)."""
        ...

    def wake(self) -> None:
        """Take the memory back before generating."""
        ...

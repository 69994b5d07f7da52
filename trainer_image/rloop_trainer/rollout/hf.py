"""A transformers rollout engine: CPU tests, the demo, and GPUs without vLLM.

It keeps its own copy of the policy, so weights reach it the same way they reach
vLLM (`load_weights` after each update) and the trainer's ZeRO partitioning never
matters here. Sampling is seeded per `generate` call: the same prompts, spec and
weights give the same completions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rloop_trainer.rollout.base import Completion, SamplingSpec, decode_responses


class HFEngine:
    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_batch: int = 256
    ) -> None:
        self.model = copy.deepcopy(model).train(False)
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.pad_token_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        )

    @property
    def _device(self) -> torch.device:
        weights_device: torch.device = next(self.model.parameters()).device
        return weights_device

    @torch.no_grad()
    def generate(
        self, prompt_token_ids: Sequence[list[int]], sampling: SamplingSpec
    ) -> list[list[Completion]]:
        requests = [list(ids) for ids in prompt_token_ids for _ in range(sampling.n)]
        devices = [self._device.index or 0] if self._device.type == "cuda" else []
        completions: list[Completion] = []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(sampling.seed)
            for start in range(0, len(requests), self.max_batch):
                completions += self._generate_batch(
                    requests[start : start + self.max_batch], sampling
                )
        n = sampling.n
        return [completions[i * n : (i + 1) * n] for i in range(len(prompt_token_ids))]

    def _generate_batch(
        self, requests: list[list[int]], sampling: SamplingSpec
    ) -> list[Completion]:
        longest = max(len(ids) for ids in requests)
        input_ids = torch.full((len(requests), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(requests):
            input_ids[row, longest - len(ids) :] = torch.tensor(ids)
            attention_mask[row, longest - len(ids) :] = 1
        output = self.model.generate(
            input_ids=input_ids.to(self._device),
            attention_mask=attention_mask.to(self._device),
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            max_new_tokens=sampling.max_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )
        cut = [self._cut(row[longest:].tolist(), sampling.max_tokens) for row in output]
        texts = decode_responses(self.tokenizer, [token_ids for token_ids, _ in cut])
        return [
            Completion(token_ids=token_ids, text=text, truncated=truncated)
            for (token_ids, truncated), text in zip(cut, texts, strict=True)
        ]

    def _cut(self, generated: list[int], max_tokens: int) -> tuple[list[int], bool]:
        """The response up to and including EOS, and whether it was truncated instead."""
        if self.eos_token_id in generated:
            return generated[: generated.index(self.eos_token_id) + 1], False
        return generated[:max_tokens], True

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        own = self.model.state_dict()
        for name, tensor in named_tensors:
            if name not in own:
                raise KeyError(f"rollout model has no weight named {name!r}")
            own[name].copy_(tensor.to(own[name].device, own[name].dtype))

    def sleep(self) -> None:
        """Nothing to free: this engine's copy is small next to the trainer's state."""

    def wake(self) -> None:
        """Nothing to restore (see sleep)."""

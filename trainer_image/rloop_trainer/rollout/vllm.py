"""The vLLM rollout engine (written against vLLM 0.25.1), colocated with training.

The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so weight
updates reach the model without serialising tensors: `LLM.apply_model(fn)` calls
`fn(model)` in the worker, and vLLM's own `model.load_weights` maps HF names onto
its fused layers. Between generation and training the engine sleeps at level 1
(weights offloaded to host memory, KV cache dropped), so the GPU holds one copy
of the weights while DeepSpeed trains. vllm is imported only when this engine is
built, so nothing else needs it installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rloop_trainer.rollout.base import Completion, SamplingSpec, decode_responses

_SLEEP_LEVEL = 1
_ALL_TAGS = ("kv_cache", "weights")


def sampling_params_for(
    spec: SamplingSpec, prompt_count: int, params_type: Any, first_prompt: int = 0
) -> list[Any]:
    """One SamplingParams per prompt; prompt i is seeded `spec.seed + i` so every prompt
    draws its own n samples reproducibly, whatever batch it lands in. vLLM does not
    detokenize: its incremental detokenizer runs between decode steps in this process,
    while `decode_responses` decodes every response once, after generation."""
    return [
        params_type(
            n=spec.n,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.max_tokens,
            seed=spec.seed + first_prompt + index,
            detokenize=False,
        )
        for index in range(prompt_count)
    ]


def completions_from_output(
    request_output: Any, n: int, eos_token_id: int, tokenizer: PreTrainedTokenizerBase
) -> list[Completion]:
    """Map one vLLM RequestOutput to n Completions ordered by sample index.

    A sequence stopped by EOS keeps the EOS token id, as the transformers engine
    does, so the trainer learns to stop in both cases.
    """
    samples = sorted(request_output.outputs, key=lambda output: output.index)
    if len(samples) != n:
        raise RuntimeError(
            f"vLLM returned {len(samples)} samples for request {request_output.request_id}, "
            f"expected {n}"
        )
    token_lists, truncated = [], []
    for sample in samples:
        token_ids = list(sample.token_ids)
        stopped_at_eos = sample.finish_reason == "stop" and sample.stop_reason is None
        if stopped_at_eos and (not token_ids or token_ids[-1] != eos_token_id):
            token_ids.append(eos_token_id)
        token_lists.append(token_ids)
        truncated.append(sample.finish_reason == "length")
    texts = decode_responses(tokenizer, token_lists)
    return [
        Completion(token_ids=ids, text=text, truncated=cut)
        for ids, text, cut in zip(token_lists, texts, truncated, strict=True)
    ]


class VLLMEngine:
    def __init__(
        self,
        llm: Any,
        tokenizer: PreTrainedTokenizerBase,
        params_type: Any,
        max_prompts_per_call: int = 1024,
    ) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.params_type = params_type
        self.max_prompts_per_call = max_prompts_per_call
        self.sleeping_tags: set[str] = set()

    @classmethod
    def launch(
        cls,
        policy_dir: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_model_len: int,
        seed: int,
        gpu_memory_utilization: float = 0.5,
    ) -> VLLMEngine:
        """Start vLLM on this process's GPU from a local HF policy directory."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM, SamplingParams

        llm = LLM(
            model=policy_dir,
            dtype="bfloat16",
            seed=seed,
            max_model_len=max_model_len,
            enable_sleep_mode=True,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        return cls(llm, tokenizer, SamplingParams)

    def generate(
        self, prompt_token_ids: Sequence[list[int]], sampling: SamplingSpec
    ) -> list[list[Completion]]:
        self.wake()
        completions: list[list[Completion]] = []
        for start in range(0, len(prompt_token_ids), self.max_prompts_per_call):
            chunk = prompt_token_ids[start : start + self.max_prompts_per_call]
            outputs = self.llm.generate(
                [{"prompt_token_ids": list(ids)} for ids in chunk],
                sampling_params_for(sampling, len(chunk), self.params_type, first_prompt=start),
                use_tqdm=False,
            )
            completions += [
                completions_from_output(output, sampling.n, self.eos_token_id, self.tokenizer)
                for output in outputs
            ]
        return completions

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        weights = list(named_tensors)
        if "weights" in self.sleeping_tags:
            self.llm.wake_up(tags=["weights"])
            self.sleeping_tags.discard("weights")
        self.llm.apply_model(lambda model: model.load_weights(weights))
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        if not self.sleeping_tags:
            self.llm.sleep(level=_SLEEP_LEVEL)
            self.sleeping_tags = set(_ALL_TAGS)

    def wake(self) -> None:
        if self.sleeping_tags:
            self.llm.wake_up(tags=sorted(self.sleeping_tags))
            self.sleeping_tags.clear()

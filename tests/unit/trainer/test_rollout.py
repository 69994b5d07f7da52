"""Rollout engines: the transformers engine on a tiny model, and everything around vLLM
that runs without a GPU, against stand-ins shaped like vLLM 0.25.1's objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.errors import PhaseError
from rloop_trainer.rollout import resolve_engine
from rloop_trainer.rollout.base import SamplingSpec
from rloop_trainer.rollout.hf import HFEngine
from rloop_trainer.rollout.vllm import VLLMEngine, completions_from_output, sampling_params_for
from transformers import Qwen2ForCausalLM


@pytest.fixture(scope="module")
def engine() -> HFEngine:
    torch.manual_seed(0)
    tokenizer = toy.build_tokenizer()
    model = Qwen2ForCausalLM(toy.tiny_config(tokenizer))
    examples = toy.correct_answers(toy.make_problems("train", 50, 0), seed=0)
    toy.warm_start(model, tokenizer, examples, steps=40, lr=lambda _: toy.WARM_START_LR)
    return HFEngine(model, tokenizer)


def _prompts(engine: HFEngine) -> list[list[int]]:
    return [engine.tokenizer.encode(text) for text in ["1+2=", "13+4=", "7+7="]]


def test_hf_engine_returns_n_completions_per_prompt_in_order(engine: HFEngine) -> None:
    spec = SamplingSpec(n=4, temperature=1.0, top_p=1.0, max_tokens=6, seed=1)

    completions = engine.generate(_prompts(engine), spec)

    assert [len(samples) for samples in completions] == [4, 4, 4]
    for samples in completions:
        for completion in samples:
            assert len(completion.token_ids) <= 6
            stopped = completion.token_ids[-1] == engine.eos_token_id
            assert completion.truncated != stopped


def test_hf_engine_sampling_is_reproducible_from_the_seed(engine: HFEngine) -> None:
    spec = SamplingSpec(n=3, temperature=1.0, top_p=1.0, max_tokens=6, seed=7)
    other = SamplingSpec(n=3, temperature=1.0, top_p=1.0, max_tokens=6, seed=8)

    first = engine.generate(_prompts(engine), spec)

    assert engine.generate(_prompts(engine), spec) == first
    assert engine.generate(_prompts(engine), other) != first


def test_hf_engine_marks_responses_cut_at_max_tokens_as_truncated(engine: HFEngine) -> None:
    spec = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_tokens=1, seed=0)

    completions = engine.generate(_prompts(engine), spec)

    assert all(c.truncated and len(c.token_ids) == 1 for samples in completions for c in samples)


def test_hf_engine_weights_can_be_replaced_by_name(engine: HFEngine) -> None:
    spec = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_tokens=6, seed=3)
    saved = {k: v.clone() for k, v in engine.model.state_dict().items()}
    before = engine.generate(_prompts(engine), spec)

    engine.load_weights((k, torch.zeros_like(v)) for k, v in saved.items() if "mlp" in k)
    changed = engine.generate(_prompts(engine), spec)
    engine.load_weights(saved.items())

    assert changed != before
    assert engine.generate(_prompts(engine), spec) == before
    with pytest.raises(KeyError, match=r"no weight named 'not\.a\.weight'"):
        engine.load_weights([("not.a.weight", torch.zeros(1))])


def test_auto_picks_vllm_only_with_cuda_and_vllm() -> None:
    assert resolve_engine("auto", cuda_available=True, vllm_installed=True) == "vllm"
    assert resolve_engine("auto", cuda_available=False, vllm_installed=True) == "hf"
    assert resolve_engine("auto", cuda_available=True, vllm_installed=False) == "hf"
    with pytest.raises(PhaseError, match="engine 'vllm' needs a CUDA GPU"):
        resolve_engine("vllm", cuda_available=False, vllm_installed=False)


@dataclass(frozen=True)
class FakeSamplingParams:  # the keyword arguments vllm.SamplingParams takes
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    detokenize: bool


@dataclass
class FakeCompletionOutput:  # vllm.outputs.CompletionOutput's fields we read
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None
    stop_reason: int | str | None = None


@dataclass
class FakeRequestOutput:
    request_id: str
    outputs: list[FakeCompletionOutput]


TOKENIZER = toy.build_tokenizer()
EOS = int(TOKENIZER.eos_token_id)
DIGIT = {int(TOKENIZER.convert_tokens_to_ids(str(d))): str(d) for d in range(10)}
ONE, TWO, THREE = (next(i for i, d in DIGIT.items() if d == str(n)) for n in (1, 2, 3))


@dataclass
class FakeLLM:
    """Answers like vllm.LLM: one RequestOutput per prompt, samples in a shuffled order."""

    calls: list[tuple[list[dict[str, list[int]]], list[FakeSamplingParams]]] = field(
        default_factory=list
    )
    events: list[str] = field(default_factory=list)
    model_weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def generate(
        self, prompts: list[dict[str, list[int]]], params: list[FakeSamplingParams], use_tqdm: bool
    ) -> list[FakeRequestOutput]:
        self.calls.append((prompts, params))
        results = []
        for prompt, sampling in zip(prompts, params, strict=True):
            first = prompt["prompt_token_ids"][0]
            outputs = [  # vLLM's text is empty: the engine asks it not to detokenize
                FakeCompletionOutput(i, "", [first, ONE + i, EOS], "stop")
                for i in reversed(range(sampling.n))
            ]
            results.append(FakeRequestOutput(str(first), outputs))
        return results

    def apply_model(self, fn: Callable[[Any], Any]) -> list[Any]:
        self.events.append("apply_model")
        return [fn(self)]

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> set[str]:
        self.model_weights.update(weights)
        return {name for name, _ in weights}

    def reset_prefix_cache(self) -> bool:
        self.events.append("reset_prefix_cache")
        return True

    def sleep(self, level: int) -> None:
        self.events.append(f"sleep({level})")

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.events.append(f"wake_up({tags})")


def test_sampling_parameters_carry_the_spec_and_a_seed_per_prompt() -> None:
    spec = SamplingSpec(n=16, temperature=0.9, top_p=0.95, max_tokens=2048, seed=100)

    params = sampling_params_for(spec, 3, FakeSamplingParams, first_prompt=10)

    assert params == [
        FakeSamplingParams(
            n=16, temperature=0.9, top_p=0.95, max_tokens=2048, seed=seed, detokenize=False
        )
        for seed in (110, 111, 112)
    ]


def test_outputs_are_mapped_to_samples_in_index_order_with_eos_and_truncation() -> None:
    output = FakeRequestOutput(
        "r1",
        [
            FakeCompletionOutput(1, "", [ONE, TWO], "length"),
            FakeCompletionOutput(0, "", [ONE], "stop"),  # EOS not in token_ids: added back
            FakeCompletionOutput(2, "", [THREE], "stop", stop_reason="###"),
        ],
    )

    completions = completions_from_output(output, n=3, eos_token_id=EOS, tokenizer=TOKENIZER)

    assert [c.text for c in completions] == ["1", "12", "3"]  # decoded here, EOS dropped
    assert [c.token_ids for c in completions] == [[ONE, EOS], [ONE, TWO], [THREE]]
    assert [c.truncated for c in completions] == [False, True, False]


def test_a_request_with_the_wrong_sample_count_is_an_error() -> None:
    output = FakeRequestOutput("r9", [FakeCompletionOutput(0, "x", [1], "stop")])

    with pytest.raises(RuntimeError, match="1 samples for request r9, expected 2"):
        completions_from_output(output, n=2, eos_token_id=EOS, tokenizer=TOKENIZER)


def test_vllm_engine_batches_requests_and_maps_outputs_back_to_prompts() -> None:
    llm = FakeLLM()
    engine = VLLMEngine(llm, TOKENIZER, FakeSamplingParams, max_prompts_per_call=2)
    prompts = [[first] for first in DIGIT][:5]

    completions = engine.generate(prompts, SamplingSpec(2, 1.0, 1.0, 8, seed=0))

    assert [len(call[0]) for call in llm.calls] == [2, 2, 1]
    assert [p.seed for call in llm.calls for p in call[1]] == [0, 1, 2, 3, 4]
    assert [[c.text for c in samples] for samples in completions] == [
        [f"{DIGIT[first]}1", f"{DIGIT[first]}2"] for [first] in prompts
    ]


def test_vllm_engine_sleeps_before_training_and_takes_new_weights_before_waking() -> None:
    llm = FakeLLM()
    engine = VLLMEngine(llm, TOKENIZER, FakeSamplingParams)
    new_weights = [("model.embed_tokens.weight", torch.ones(2, 2))]

    engine.sleep()
    engine.load_weights(new_weights)
    engine.wake()
    engine.wake()

    assert llm.events == [
        "sleep(1)",
        "wake_up(['weights'])",
        "apply_model",
        "reset_prefix_cache",
        "wake_up(['kv_cache'])",
    ]
    assert torch.equal(llm.model_weights["model.embed_tokens.weight"], torch.ones(2, 2))

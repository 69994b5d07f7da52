"""Rollout engines behind one interface: vLLM on GPUs, transformers elsewhere."""

from __future__ import annotations

import importlib.util

import torch
from rloop_contract.sections import EngineName
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rloop_trainer.errors import PhaseError
from rloop_trainer.rollout.base import Completion, RolloutEngine, SamplingSpec

__all__ = ["Completion", "RolloutEngine", "SamplingSpec", "make_engine", "resolve_engine"]


def resolve_engine(kind: EngineName, cuda_available: bool, vllm_installed: bool) -> str:
    """Pick the engine; "auto" means vLLM where it can run (CUDA and the package), else hf."""
    if kind == "auto":
        return "vllm" if cuda_available and vllm_installed else "hf"
    if kind == "vllm" and not (cuda_available and vllm_installed):
        raise PhaseError(
            "engine 'vllm' needs a CUDA GPU and the vllm package; "
            "use engine 'auto' or 'hf' on this machine"
        )
    return kind


def make_engine(
    kind: EngineName,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    policy_dir: str,
    max_model_len: int,
    seed: int,
) -> RolloutEngine:
    """Build the engine; `policy_dir` is the local HF dir vLLM loads its first weights from."""
    chosen = resolve_engine(
        kind, torch.cuda.is_available(), importlib.util.find_spec("vllm") is not None
    )
    if chosen == "vllm":
        from rloop_trainer.rollout.vllm import VLLMEngine

        return VLLMEngine.launch(policy_dir, tokenizer, max_model_len=max_model_len, seed=seed)
    from rloop_trainer.rollout.hf import HFEngine

    return HFEngine(model, tokenizer)

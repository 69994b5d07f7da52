"""A policy is a Hugging Face directory: config.json, safetensors weights, tokenizer files.

`s3://` policies are downloaded to a local cache directory (`RLOOP_CACHE_DIR`, default
a temporary directory); `file://` and absolute paths are read in place; `hf://org/name`
goes to `from_pretrained` and so needs a network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from rloop_trainer import store
from rloop_trainer.errors import PhaseError


def _cache_root() -> Path:
    return Path(os.environ.get("RLOOP_CACHE_DIR") or Path(tempfile.gettempdir()) / "rloop-cache")


def local_policy_dir(uri: str) -> str:
    """A local path (or hub id) that `from_pretrained` can read for `uri`."""
    if uri.startswith("hf://"):
        return uri.removeprefix("hf://")
    if uri.startswith("s3://"):
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        target = _cache_root() / "policies" / digest
        if not (target / "config.json").exists():
            store.download_dir(uri, target)
        return str(target)
    path = Path(uri.removeprefix("file://"))
    if not path.is_dir():
        raise PhaseError(f"policy {uri} is not a directory; point policy_uri at an HF model dir")
    return str(path)


def _load_tokenizer(location: str) -> PreTrainedTokenizerBase:
    # AutoTokenizer picks a class from config.json's model_type, and that class may rebuild
    # the pre-tokenizer; tokenizer.json is the tokenizer the policy was trained with.
    if (Path(location) / "tokenizer.json").exists():
        fast: PreTrainedTokenizerBase = PreTrainedTokenizerFast.from_pretrained(location)
        return fast
    auto: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(location)
    return auto


def load_policy(
    uri: str, dtype: torch.dtype, device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the model and tokenizer of a policy; a directory with no model is a PhaseError."""
    location = local_policy_dir(uri)
    if not uri.startswith("hf://") and not (Path(location) / "config.json").exists():
        raise PhaseError(
            f"policy {uri} has no config.json; it must be a Hugging Face model directory "
            "(config.json, *.safetensors, tokenizer files)"
        )
    try:
        tokenizer = _load_tokenizer(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise PhaseError(f"cannot load policy {uri}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer  # type: ignore[arg-type]


def save_policy_state(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    uri: str,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """Save as safetensors + tokenizer, loadable by transformers and vLLM.

    `state_dict` overrides the model's own tensors (a ZeRO-3 gathered copy).
    """
    with tempfile.TemporaryDirectory(prefix="rloop-policy-") as staging:
        staging_dir = Path(staging)
        model.save_pretrained(staging_dir, state_dict=state_dict)
        tokenizer.save_pretrained(staging_dir)
        store.upload_dir(staging_dir, uri)


def save_policy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, uri: str) -> None:
    save_policy_state(model, tokenizer, uri)

"""Training prompts: parquet or JSONL, in either of two shapes.

- verl / DAPO-17k: `prompt` (chat messages), `reward_model.ground_truth`, `data_source`.
- plain: `id`, `problem`, `answer`.

Every prompt gets a stable id (the `id` column, or a hash of the data source, the
messages and the ground truth), so the filter can count a prompt's rollouts across
steps. Duplicate ids are kept once: DAPO-17k ships each prompt many times over.
The order prompts are drawn in is a pure function of (seed, position), so a resumed
phase sees the same data.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from transformers import PreTrainedTokenizerBase

from rloop_trainer import store
from rloop_trainer.errors import PhaseError


@dataclass(frozen=True)
class PromptRecord:
    prompt_id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    ground_truth: str
    data_source: str


def _read_rows(uri: str) -> list[dict[str, Any]]:
    raw = store.read_bytes(uri)
    if uri.endswith((".jsonl", ".json")):
        rows = []
        for number, line in enumerate(raw.decode().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PhaseError(
                    f"{uri} line {number} is not JSON ({exc.msg}); fix the line"
                ) from exc
        return rows
    try:
        table = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowInvalid, OSError) as exc:
        raise PhaseError(
            f"{uri} is not a readable parquet file ({exc}); write prompts as .parquet or .jsonl"
        ) from exc
    rows_out: list[dict[str, Any]] = table.to_pylist()
    return rows_out


def _stable_id(data_source: str, messages: tuple[tuple[str, str], ...], ground_truth: str) -> str:
    digest = hashlib.sha256(json.dumps([data_source, messages, ground_truth]).encode())
    return digest.hexdigest()[:20]


def _record(row: dict[str, Any], where: str) -> PromptRecord:
    if "problem" in row:
        answer = row.get("answer")
        if answer is None or str(answer).strip() == "":
            raise PhaseError(f"{where}: missing ground truth in 'answer'; every prompt needs one")
        messages = (("user", str(row["problem"])),)
        source = str(row.get("data_source") or "plain")
        prompt_id = str(row["id"]) if row.get("id") is not None else ""
        return PromptRecord(
            prompt_id or _stable_id(source, messages, str(answer)), messages, str(answer), source
        )
    if "prompt" in row:
        chat = row["prompt"]
        if isinstance(chat, str):
            chat = [{"role": "user", "content": chat}]
        if not isinstance(chat, list) or not all(
            isinstance(m, dict) and "content" in m for m in chat
        ):
            raise PhaseError(f"{where}: 'prompt' must be a list of {{role, content}} messages")
        chat_messages = tuple((str(m.get("role", "user")), str(m["content"])) for m in chat)
        reward_model = row.get("reward_model") or {}
        ground_truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
        if ground_truth is None or str(ground_truth).strip() == "":
            raise PhaseError(
                f"{where}: missing ground truth in 'reward_model.ground_truth'; "
                "every prompt needs one"
            )
        source = str(row.get("data_source") or "unknown")
        return PromptRecord(
            _stable_id(source, chat_messages, str(ground_truth)),
            chat_messages,
            str(ground_truth),
            source,
        )
    raise PhaseError(
        f"{where}: neither a 'problem' column (plain shape: id, problem, answer) nor a 'prompt' "
        f"column (verl shape: prompt, reward_model.ground_truth, data_source); got {sorted(row)}"
    )


def load_prompts(uri: str) -> list[PromptRecord]:
    """Parse every row once; the first bad row is an error naming its number and field."""
    records: dict[str, PromptRecord] = {}
    for number, row in enumerate(_read_rows(uri)):
        record = _record(row, f"{uri} row {number}")
        records.setdefault(record.prompt_id, record)
    if not records:
        raise PhaseError(f"{uri} has no prompts; point train_data_uri at a non-empty file")
    return list(records.values())


def render_prompt(record: PromptRecord, tokenizer: PreTrainedTokenizerBase) -> str:
    """The prompt text: the tokenizer's chat template if it has one, else the contents."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": role, "content": content} for role, content in record.messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return str(rendered)
    return "\n".join(content for _, content in record.messages)


class EncodedPrompt(NamedTuple):
    text: str
    token_ids: list[int]


def encode_prompt(record: PromptRecord, tokenizer: PreTrainedTokenizerBase) -> EncodedPrompt:
    """The rendered prompt and its token ids, the same in every phase that samples.

    A chat template already writes the special tokens (BOS) into the text, so the
    tokenizer adds its own only to a prompt rendered without one.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    text = render_prompt(record, tokenizer)
    return EncodedPrompt(text, tokenizer.encode(text, add_special_tokens=not has_template))


def prompt_order(position: int, count: int, num_prompts: int, seed: int) -> list[int]:
    """Indices of the `count` prompts starting at stream `position`.

    The stream is one seeded permutation per epoch, so it depends only on
    (seed, position): a resumed phase draws exactly what the killed one would have.
    """
    permutations: dict[int, list[int]] = {}
    indices = []
    for absolute in range(position, position + count):
        epoch, offset = divmod(absolute, num_prompts)
        if epoch not in permutations:
            permutations[epoch] = list(range(num_prompts))
            random.Random(f"{seed}-{epoch}").shuffle(permutations[epoch])
        indices.append(permutations[epoch][offset])
    return indices

"""Prompts in both shapes, stable ids, clear errors, and a resumable data order."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rloop_trainer import toy
from rloop_trainer.data import (
    PromptRecord,
    encode_prompt,
    load_prompts,
    prompt_order,
    render_prompt,
)
from rloop_trainer.errors import PhaseError
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

VERL_ROW = {
    "data_source": "math_dapo",
    "prompt": [{"role": "user", "content": "What is 2+2?"}],
    "reward_model": {"ground_truth": "4", "style": "rule-lab"},
}


def test_verl_rows_get_a_content_id_and_duplicates_are_kept_once(tmp_path: Path) -> None:
    other = {**VERL_ROW, "prompt": [{"role": "user", "content": "What is 3+3?"}]}
    other["reward_model"] = {"ground_truth": "6"}
    pq.write_table(pa.Table.from_pylist([VERL_ROW, other, VERL_ROW]), tmp_path / "p.parquet")

    prompts = load_prompts(str(tmp_path / "p.parquet"))
    again = load_prompts(str(tmp_path / "p.parquet"))

    assert [p.ground_truth for p in prompts] == ["4", "6"]
    assert [p.prompt_id for p in prompts] == [p.prompt_id for p in again]
    assert prompts[0].messages == (("user", "What is 2+2?"),)
    assert prompts[0].data_source == "math_dapo"


def test_plain_jsonl_rows_keep_their_ids(tmp_path: Path) -> None:
    lines = [
        {"id": "q1", "problem": "1+1=", "answer": 2},
        {"id": "q2", "problem": "2+2=", "answer": "4"},
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(line) for line in lines))

    prompts = load_prompts(f"file://{tmp_path}/p.jsonl")

    assert [(p.prompt_id, p.ground_truth) for p in prompts] == [("q1", "2"), ("q2", "4")]


def test_a_missing_ground_truth_names_the_row_and_field(tmp_path: Path) -> None:
    rows = [VERL_ROW, {**VERL_ROW, "reward_model": {"style": "rule"}}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")

    missing = r"row 1: missing ground truth in 'reward_model.ground_truth'"
    with pytest.raises(PhaseError, match=missing):
        load_prompts(str(tmp_path / "p.parquet"))


def test_a_file_that_is_not_parquet_says_so(tmp_path: Path) -> None:
    (tmp_path / "p.parquet").write_bytes(b"this is not parquet")

    with pytest.raises(PhaseError, match=r"p\.parquet is not a readable parquet file"):
        load_prompts(str(tmp_path / "p.parquet"))


def test_a_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"id": "a", "problem": "x", "answer": "1"}\n{oops\n')

    with pytest.raises(PhaseError, match=r"p\.jsonl line 2 is not JSON"):
        load_prompts(str(tmp_path / "p.jsonl"))


def test_rows_of_an_unknown_shape_name_both_accepted_shapes(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([{"question": "x"}]), tmp_path / "p.parquet")

    with pytest.raises(PhaseError, match=r"neither a 'problem' column .* nor a 'prompt' column"):
        load_prompts(str(tmp_path / "p.parquet"))


def test_without_a_chat_template_the_prompt_is_the_problem_text() -> None:
    rendered = render_prompt(
        PromptRecord("a", (("user", "3+4="),), "7", "toy"), toy.build_tokenizer()
    )

    assert rendered == "3+4="


def bos_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    """One token per character; encode() puts <s> first unless told to add no special tokens."""
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", *"0123456789+=| :abeinrstu"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, bos_token="<s>", unk_token="<unk>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


PROBLEM = PromptRecord("a", (("user", "3+4="),), "7", "toy")


def test_a_prompt_without_a_chat_template_gets_the_tokenizers_special_tokens() -> None:
    tokenizer = bos_tokenizer(chat_template=None)

    text, token_ids = encode_prompt(PROBLEM, tokenizer)

    assert text == "3+4="
    assert token_ids == [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]


def test_a_chat_template_that_writes_bos_itself_gets_no_second_one() -> None:
    template = "<s>{% for m in messages %}{{ m.role }}: {{ m.content }}|{% endfor %}assistant: "
    tokenizer = bos_tokenizer(chat_template=template)

    text, token_ids = encode_prompt(PROBLEM, tokenizer)

    assert text == "<s>user: 3+4=|assistant: "
    assert token_ids.count(tokenizer.bos_token_id) == 1
    assert token_ids == tokenizer.encode(text, add_special_tokens=False)


def test_the_prompt_stream_is_a_pure_function_of_seed_and_position() -> None:
    whole = prompt_order(0, 25, num_prompts=10, seed=3)
    resumed = prompt_order(12, 13, num_prompts=10, seed=3)

    assert whole[12:] == resumed
    assert sorted(whole[:10]) == list(range(10))  # each epoch is a permutation
    assert sorted(whole[10:20]) == list(range(10))
    assert whole[:10] != prompt_order(0, 10, num_prompts=10, seed=4)

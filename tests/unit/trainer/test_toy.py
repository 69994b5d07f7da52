"""The toy task: verifiable sums, a trained tokenizer that round-trips, a tiny model."""

from __future__ import annotations

from pathlib import Path

import torch
from rloop_trainer import toy
from rloop_trainer.policy import load_policy
from rloop_trainer.reward import last_boxed


def test_problems_are_distinct_sums_with_correct_answers() -> None:
    train = toy.make_problems("train", 50, seed=1)
    heldout = toy.make_problems("heldout", 20, seed=1)

    assert len({p.problem for p in train}) == 50
    for problem in [*train, *heldout]:
        terms = problem.problem.removesuffix("=").split("+")
        assert str(sum(map(int, terms))) == problem.answer
    assert all(p.problem.count("+") == 2 for p in heldout)  # the harder split


def test_a_saved_policy_round_trips_its_tokenizer_and_answer_format(tmp_path: Path) -> None:
    toy.build_policy(tmp_path, warm_start_steps=1)

    model, tokenizer = load_policy(str(tmp_path), torch.float32, torch.device("cpu"))
    text = "12+7=" + toy.response_text("19")

    assert tokenizer.decode(tokenizer.encode(text)) == text
    first_token = tokenizer.convert_ids_to_tokens(tokenizer.encode(toy.response_text("7")))[0]
    assert first_token == "\\boxed{"  # one token, so answers stay short
    assert last_boxed(toy.response_text("19")) == "19"
    assert sum(p.numel() for p in model.parameters()) < 500_000


def test_sft_batches_put_labels_on_the_response_and_its_eos_only() -> None:
    tokenizer = toy.build_tokenizer()

    input_ids, labels = toy.padded_sft_batch(tokenizer, [("1+2=", "3"), ("10+20=", "30")])

    assert input_ids.shape == labels.shape == (2, 9)
    assert tokenizer.decode(input_ids[0, :6]) == "1+2=3<eos>"
    assert labels[0].tolist() == [-100] * 4 + input_ids[0, 4:6].tolist() + [-100] * 3
    assert labels[1, :6].tolist() == [-100] * 6
    assert (input_ids[0, 6:] == tokenizer.pad_token_id).all()

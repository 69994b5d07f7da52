"""Padded micro-batches: one mask convention for DAPO and RFT, and length-sorted grouping."""

from __future__ import annotations

from rloop_trainer.batches import by_length, collate

PAD = 0


def test_target_mask_marks_exactly_the_positions_that_predict_response_tokens() -> None:
    prompts, responses = [[5, 6, 7], [8]], [[9, 2], [10, 11, 2]]

    batch = collate(prompts, responses, PAD, max_tokens=16)

    assert batch.input_ids.shape == (2, 5) and batch.target_mask.shape == (2, 4)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequence = prompt + response
        assert batch.input_ids[row, : len(sequence)].tolist() == sequence
        assert batch.input_ids[row, len(sequence) :].tolist() == [PAD] * (5 - len(sequence))
        assert batch.attention_mask[row].tolist() == [1] * len(sequence) + [0] * (5 - len(sequence))
        for position in range(4):
            target_is_response = len(prompt) <= position + 1 < len(sequence)
            assert bool(batch.target_mask[row, position]) == target_is_response
    assert batch.target_tokens == 5


def test_a_sequence_over_max_tokens_keeps_its_head() -> None:
    batch = collate([[5, 6, 7]], [[8, 9, 10, 11]], PAD, max_tokens=5)

    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert batch.target_mask.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_the_first_token_is_never_a_target_even_without_a_prompt() -> None:
    batch = collate([[]], [[3, 4, 5]], PAD, max_tokens=16)

    assert batch.target_mask.tolist() == [[1.0, 1.0]]


def test_micro_batches_group_similar_lengths_and_keep_every_item_once() -> None:
    lengths = [9, 2, 7, 3, 8, 1, 5]

    micros = by_length(list(range(7)), 3, lambda i: lengths[i])

    assert [[lengths[i] for i in m] for m in micros] == [[1, 2, 3], [5, 7, 8], [9]]
    assert sorted(i for m in micros for i in m) == list(range(7))

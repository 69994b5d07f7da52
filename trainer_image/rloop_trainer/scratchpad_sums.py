"""The demo's task: sums of single-digit terms, added on a scratchpad in any order.

A problem is `3+8+5=`. A solution takes the terms one at a time in an order of its
choosing, writing each term and the running total, then boxes the total:

    3+5=8+8=16\\boxed{16}      8+3=11+5=16\\boxed{16}      5+8=13+3=16\\boxed{16}   ...

Only the boxed total is graded (math-verify, as on real tasks), so each of the n!
orders is equally correct: the task has diverse solutions for RL to keep or to collapse
onto one order, and for RFT to consolidate.

- train: three terms, a small set that RL can learn by heart, so over-fitting can
  show: train reward rising while held-out accuracy stalls or falls;
- heldout: four terms, one more running total to get right: harder, and outside the
  RL train distribution. No held-out problem is ever in the warm-start data.

The tokenizer and the tiny model are toy.py's. The warm start is a few hundred
supervised steps on generated solutions of 2 to 4 terms in random orders
(deterministic from its seed), so that the base policy solves some problems of both
splits and fails others.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from rloop_trainer import toy

TERMS = {"train": 3, "heldout": 4}
WARM_START_TERMS = (2, 3, 4)
WARM_START_BATCH = 32
WARM_START_LR = 3e-3
# A quarter of all problems (by a hash of their text) is reserved for the held-out split.
HELDOUT_PARTITION = 4


def problem_text(terms: Sequence[int]) -> str:
    return "+".join(map(str, terms)) + "="


def solution_text(terms: Sequence[int], order: Sequence[int]) -> str:
    """The scratchpad that adds `terms` in `order` (a permutation of their indices)."""
    total = terms[order[0]]
    text = str(total)
    for index in order[1:]:
        total += terms[index]
        text += f"+{terms[index]}={total}"
    return f"{text}{toy.response_text(str(total))}"


def reserved_for_heldout(problem: str) -> bool:
    return zlib.crc32(problem.encode()) % HELDOUT_PARTITION == 0


def make_problems(
    split: Literal["train", "heldout"], count: int, seed: int, terms_per_problem: int | None = None
) -> list[toy.ToyProblem]:
    """`count` distinct problems of the split: 3 terms for train, 4 for heldout, unless
    `terms_per_problem` says otherwise."""
    rng = random.Random(seed)
    heldout = split == "heldout"
    size = terms_per_problem or TERMS[split]
    seen: dict[str, toy.ToyProblem] = {}
    while len(seen) < count:
        terms = [rng.randint(0, 9) for _ in range(size)]
        problem = problem_text(terms)
        if reserved_for_heldout(problem) == heldout:
            item = toy.ToyProblem(f"{split}-{len(seen):05d}", problem, str(sum(terms)))
            seen.setdefault(problem, item)
    return list(seen.values())


def warm_start_examples(count: int, rng: random.Random) -> list[tuple[str, str]]:
    """(problem, solution) pairs of 2 to 4 terms in random orders, none held out."""
    examples: list[tuple[str, str]] = []
    while len(examples) < count:
        terms = [rng.randint(0, 9) for _ in range(rng.choice(WARM_START_TERMS))]
        problem = problem_text(terms)
        if not reserved_for_heldout(problem):
            order = rng.sample(range(len(terms)), len(terms))
            examples.append((problem, solution_text(terms, order)))
    return examples


def build_policy(directory: Path, warm_start_steps: int, seed: int = 0) -> Path:
    """toy.py's tokenizer and tiny model, warm-started on generated solutions of this task:
    AdamW at a constant rate for the first half, then decayed linearly to 0 (a stable end
    point matters more than speed here); an HF policy dir."""

    def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
        rng = random.Random(seed)
        steps = warm_start_steps
        toy.warm_start(
            model,
            tokenizer,
            lambda: warm_start_examples(WARM_START_BATCH, rng),
            steps,
            lambda step: WARM_START_LR * min(1.0, 2.0 * (steps - step) / steps),
        )

    return toy.trained_policy(directory, seed, train)

"""Estimators of a policy's accuracy from n samples per problem.

pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
Models Trained on Code", eq. 1): with n samples of which c are correct,
    pass@k = 1 - C(n - c, k) / C(n, k),
the probability that a k-subset drawn without replacement holds a correct sample.
The binomials overflow floats for the n used in evaluation, so the ratio is taken
as the product prod_{i = n-c+1}^{n} (1 - k / i) (the same paper's numpy form).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemOutcome:
    """How many of a problem's `samples` were verified `correct`."""

    samples: int
    correct: int

    def __post_init__(self) -> None:
        if self.samples < 1 or not 0 <= self.correct <= self.samples:
            raise ValueError(
                f"need samples >= 1 and 0 <= correct <= samples, got "
                f"samples={self.samples}, correct={self.correct}"
            )


def pass_at_k(outcome: ProblemOutcome, k: int) -> float:
    """Unbiased pass@k of one problem; 1 <= k <= outcome.samples."""
    if not 1 <= k <= outcome.samples:
        raise ValueError(f"k must lie in [1, samples={outcome.samples}], got k={k}")
    wrong = outcome.samples - outcome.correct
    if wrong < k:
        return 1.0
    all_wrong = 1.0
    for i in range(wrong + 1, outcome.samples + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_pass_at_k(outcomes: Sequence[ProblemOutcome], k: int) -> float:
    """pass@k averaged over problems."""
    if not outcomes:
        raise ValueError("pass@k of an empty set of problems is undefined")
    return sum(pass_at_k(o, k) for o in outcomes) / len(outcomes)


def average_at_n(outcomes: Sequence[ProblemOutcome]) -> float:
    """avg@n: the per-problem fraction of correct samples, averaged over problems."""
    if not outcomes:
        raise ValueError("avg@n of an empty set of problems is undefined")
    return sum(o.correct / o.samples for o in outcomes) / len(outcomes)

"""Paired bootstrap intervals for "arm A minus arm B" over seeds and problems. Pure.

The unit of pairing is a seed: seed s ran arm A and arm B, and both were evaluated on
the same problems, so d[s][p] = A's figure on problem p minus B's (avg@n, pass@k). The
estimate is the mean over seeds of the mean over problems. Its sampling spread has two
sources, and the bootstrap resamples both: the seeds (training randomness: which seeds
were run), drawn with replacement, then for each drawn seed its problems (which problems
the held-out set happens to hold), drawn with replacement. The interval is the
percentile interval of the resampled estimates. With one seed only the problems vary:
the interval then says nothing about another seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RESAMPLES = 2000
LEVEL = 0.95
# Resamples drawn at once (bounds memory: chunk x seeds x problems indices).
_CHUNK = 250


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    seeds: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def sign(self) -> int:
        """+1 when the whole interval is above 0, -1 when below, 0 when it holds 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _rows(values: Sequence[npt.ArrayLike]) -> list[npt.NDArray[np.float64]]:
    rows = [np.asarray(row, dtype=np.float64) for row in values]
    if not rows or any(row.ndim != 1 or row.size == 0 for row in rows):
        raise ValueError("need at least one seed, each with a non-empty list of problem values")
    return rows


def point_estimate(values: Sequence[npt.ArrayLike]) -> float:
    """values[seed][problem] -> the mean over seeds of the mean over problems."""
    return float(np.mean([row.mean() for row in _rows(values)]))


def resampled_estimates(
    values: Sequence[npt.ArrayLike], resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """The estimate on `resamples` two-level bootstrap resamples (module docstring)."""
    rows = _rows(values)
    seeds = len(rows)
    estimates = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        drawn = rng.integers(seeds, size=(count, seeds))  # which seed fills each slot
        total = np.zeros(count)
        for seed, row in enumerate(rows):
            # A fresh problem resample for every slot; kept where the slot drew this seed.
            means = row[rng.integers(row.size, size=(count, seeds, row.size))].mean(axis=2)
            total += np.where(drawn == seed, means, 0.0).sum(axis=1)
        estimates[start : start + count] = total / seeds
    return estimates


def paired_interval(
    values: Sequence[npt.ArrayLike], resamples: int = RESAMPLES, level: float = LEVEL
) -> Interval:
    """values[seed][problem] of A minus B -> the estimate and its percentile interval.
    Seeded: the same values give the same interval."""
    estimates = resampled_estimates(values, resamples, np.random.default_rng(0))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return Interval(point_estimate(values), float(low), float(high), len(values))

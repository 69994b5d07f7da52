"""How the policies of a run differ, problem by problem (RLoop, arXiv 2511.04285, §3.1, App. A).

The paper explains RL over-fitting by catastrophic forgetting (later checkpoints stop
solving problems earlier ones solved) and by over-specialisation (checkpoints' solutions
drift apart). Its exact normalisations were not available to us; these are our precise
definitions, over the problems of one validation set:

- a policy SOLVES a problem when at least one of its n samples is verified correct
  (c >= 1: the problem lies within its pass@n reach, the quantity pass@k tracks);
- learning L[i, j]: the fraction of problems unsolved by policy i and solved by j;
- forgetting F[i, j]: the fraction of problems solved by i and unsolved by j
  (so F = L transposed; for i earlier than j, L is what training gained, F what it lost);
- forgetting rate: the mean of F[i, j] over all pairs of policies with i earlier than j;
- similarity S[i, j]: per problem, the Jaccard index |B_i & B_j| / |B_i | B_j| of the
  sets of token bigrams (pairs of consecutive tokens within one response) over all of
  policy i's and policy j's sampled responses; averaged over problems.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BoolMatrix = npt.NDArray[np.bool_]
FloatMatrix = npt.NDArray[np.float64]
Responses = Sequence[Sequence[int]]  # a problem's sampled responses, token ids each

# Bigram (a, b) of token ids < 2**31 is coded as one int64: a * 2**32 + b.
_BIGRAM_SHIFT = 32


def solved(correct: npt.ArrayLike) -> BoolMatrix:
    """(policies, problems) counts of correct samples -> (policies, problems): c >= 1."""
    counts = np.asarray(correct)
    if counts.ndim != 2:
        raise ValueError(f"correct must be (policies, problems), got shape {counts.shape}")
    return counts >= 1


def learning_matrix(solved_by: BoolMatrix) -> FloatMatrix:
    """(policies, problems) solved -> (policies, policies): L[i, j] = share of problems
    unsolved by i and solved by j."""
    unsolved = (~solved_by).astype(np.float64)
    learned: FloatMatrix = (unsolved @ solved_by.astype(np.float64).T) / solved_by.shape[1]
    return learned


def forgetting_matrix(solved_by: BoolMatrix) -> FloatMatrix:
    """(policies, problems) solved -> (policies, policies): F[i, j] = share of problems
    solved by i and unsolved by j."""
    return learning_matrix(solved_by).T.copy()


def forgetting_rate(forgetting: FloatMatrix) -> float | None:
    """Mean of F[i, j] over i < j (policies in training order); None for one policy."""
    above = forgetting[np.triu_indices(forgetting.shape[0], k=1)]
    return float(above.mean()) if above.size else None


def response_bigrams(responses: Responses) -> npt.NDArray[np.int64]:
    """Sorted distinct bigram codes of consecutive tokens within each response."""
    codes = [np.empty(0, dtype=np.int64)]
    for token_ids in responses:
        ids = np.asarray(token_ids, dtype=np.int64)
        codes.append((ids[:-1] << _BIGRAM_SHIFT) | ids[1:])
    return np.unique(np.concatenate(codes))


def bigram_jaccard_matrix(samples: Sequence[Sequence[Responses]]) -> FloatMatrix:
    """samples[policy][problem] (every policy with the same problems in the same order)
    -> (policies, policies) mean per-problem bigram Jaccard similarity; NaN where no
    problem has a bigram in either policy's responses."""
    problem_counts = {len(per_problem) for per_problem in samples}
    if len(problem_counts) > 1:
        raise ValueError(f"every policy needs the same problems, got counts {problem_counts}")
    bigrams = [[response_bigrams(r) for r in per_problem] for per_problem in samples]
    size = len(samples)
    similarity = np.full((size, size), np.nan)
    for i in range(size):
        for j in range(i, size):
            indices = [
                _jaccard(a, b)
                for a, b in zip(bigrams[i], bigrams[j], strict=True)
                if a.size + b.size
            ]
            if indices:
                similarity[i, j] = similarity[j, i] = float(np.mean(indices))
    return similarity


def _jaccard(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> float:
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)

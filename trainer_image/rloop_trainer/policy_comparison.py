"""How the policies of a run differ, problem by problem (RLoop, arXiv 2511.04285, §3.1, App. A).

The paper explains RL over-fitting by catastrophic forgetting (later checkpoints stop
solving problems earlier ones solved) and by over-specialisation (a policy's solutions
narrow, and drift from those of other checkpoints). Over the problems of one validation
set, with n samples of each problem from each policy:

- a policy SOLVES a problem when at least one of its n samples is verified correct
  (c >= 1: the problem lies within its pass@n reach, the quantity pass@k tracks);
- learning L[i, j] (§3.1): the fraction of problems unsolved by policy i and solved by j;
- forgetting F[i, j] (§3.1): the fraction of problems solved by i and unsolved by j
  (so F = L transposed; for i earlier than j, L is what training gained, F what it lost);
- forgetting rate: the mean of F[i, j] over all pairs of policies with i earlier than j;
- similarity S[i, j] (Appendix A): per problem, the Jaccard index
  |G(a) & G(b)| / |G(a) | G(b)| of the token-bigram sets of ONE response a of policy i
  and ONE response b of policy j, averaged over all N_i x N_j such pairs; then averaged
  over problems. On the diagonal (a policy against itself) a response is never paired
  with itself: the mean is over the N x (N - 1) pairs of distinct samples, so S[i, i] is
  the policy's own lexical diversity (1 only if all its samples are alike; the paper's
  Fig. 5b: lower is more diverse). A pair of two responses without any bigram (both
  shorter than two tokens) has no Jaccard index and is left out; a problem without any
  pair left is left out of the mean over problems; NaN if no problem is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

BoolMatrix = npt.NDArray[np.bool_]
FloatMatrix = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Responses = Sequence[Sequence[int]]  # a problem's sampled responses, token ids each

# Bigram (a, b) of token ids < 2**31 is coded as one int64: a * 2**32 + b.
_BIGRAM_SHIFT = 32
# Problems whose dense (responses x bigrams) matrices are multiplied at once are chosen
# so that each batch's matrix stays under this many cells (float32: 4 bytes each).
_BATCH_CELLS = 1 << 24


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


def bigram_similarity_matrix(samples: Sequence[Sequence[Responses]]) -> FloatMatrix:
    """samples[policy][problem] (every policy with the same problems in the same order)
    -> (policies, policies) S of the module docstring: pairwise bigram Jaccard per
    problem, mean over problems. Symmetric; its diagonal is each policy's own diversity.

    Vectorised: per problem, the 0/1 matrix M (response slots x bigrams shared by at
    least two responses) gives every pair's intersection at once as M @ M.T; a bigram
    of one response only adds to that response's size, never to an intersection."""
    problem_counts = {len(per_problem) for per_problem in samples}
    if len(problem_counts) > 1:
        raise ValueError(f"every policy needs the same problems, got counts {problem_counts}")
    policies, problems = len(samples), problem_counts.pop() if problem_counts else 0
    totals = np.zeros((policies, policies))
    counted = np.zeros((policies, policies))
    for start in range(0, problems, _PROBLEMS_PER_CHUNK):
        chunk = range(start, min(start + _PROBLEMS_PER_CHUNK, problems))
        sums, pairs = _pair_sums(_incidence(samples, chunk))
        has_pairs = pairs > 0
        totals += np.divide(sums, pairs, out=np.zeros_like(sums), where=has_pairs).sum(axis=0)
        counted += has_pairs.sum(axis=0)
    similarity = np.full((policies, policies), np.nan)
    np.divide(totals, counted, out=similarity, where=counted > 0)
    return similarity


# Problems whose responses are coded together (bounds the token arrays' memory).
_PROBLEMS_PER_CHUNK = 64


@dataclass(frozen=True)
class _Incidence:
    """A chunk's responses as 0/1 incidence of (slot, bigram). Slot s of problem c holds
    sample s % width of policy s // width (`valid` says whether that sample exists)."""

    policies: int
    width: int  # the most samples any policy has of any problem of the chunk
    valid: BoolMatrix  # (problems, slots)
    sizes: FloatMatrix  # (problems, slots): distinct bigrams of the response
    problem: IntArray  # (entries,) per (response, shared bigram) entry: its problem,
    slot: IntArray  # ... its response slot,
    column: IntArray  # ... and the bigram's column among its problem's shared bigrams
    columns: IntArray  # (problems,) shared bigrams of each problem


def _incidence(samples: Sequence[Sequence[Responses]], chunk: range) -> _Incidence:
    policies = len(samples)
    width = max(1, *(len(policy[p]) for policy in samples for p in chunk))
    slots_per_problem = policies * width
    slots: list[int] = []
    responses: list[Sequence[int]] = []
    for c, p in enumerate(chunk):
        for i, policy in enumerate(samples):
            for a, response in enumerate(policy[p]):
                slots.append(c * slots_per_problem + i * width + a)
                responses.append(response)
    lengths = np.fromiter(map(len, responses), np.int64, len(responses))
    tokens = np.fromiter(chain.from_iterable(responses), np.int64, int(lengths.sum()))
    owner = np.repeat(np.asarray(slots, dtype=np.int64), lengths)
    within = owner[:-1] == owner[1:]  # a bigram never spans two responses
    codes = (tokens[:-1][within] << _BIGRAM_SHIFT) | tokens[1:][within]
    slot, code = _distinct_pairs(owner[:-1][within], codes)
    problem = slot // slots_per_problem
    shape = (len(chunk), slots_per_problem)
    sizes = np.bincount(slot, minlength=shape[0] * shape[1]).astype(np.float64).reshape(shape)
    valid = np.zeros(shape[0] * shape[1], dtype=np.bool_)
    valid[slots] = True
    column, columns, shared = _shared_columns(problem, code, len(chunk))
    return _Incidence(
        policies,
        width,
        valid.reshape(shape),
        sizes,
        problem[shared],
        slot[shared] % slots_per_problem,
        column,
        columns,
    )


def _distinct_pairs(first: IntArray, second: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct (first, second) pairs, sorted by first then second."""
    order = np.lexsort((second, first))
    first, second = first[order], second[order]
    new = np.ones(first.size, dtype=np.bool_)
    new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    return first[new], second[new]


def _shared_columns(
    problem: IntArray, code: IntArray, problems: int
) -> tuple[IntArray, IntArray, BoolMatrix]:
    """For (problem, bigram) entries, one per response holding the bigram: which entries'
    bigram occurs in at least two of the problem's responses, the column of those
    entries' bigram within its problem, and the number of such columns per problem."""
    keys = np.lexsort((code, problem))
    sorted_problem, sorted_code = problem[keys], code[keys]
    starts = np.ones(problem.size, dtype=np.bool_)
    starts[1:] = (sorted_problem[1:] != sorted_problem[:-1]) | (sorted_code[1:] != sorted_code[:-1])
    group = np.empty(problem.size, dtype=np.int64)  # the entry's (problem, bigram) group
    group[keys] = np.cumsum(starts) - 1
    shared_group = np.bincount(group) >= 2
    shared = shared_group[group]
    columns = np.bincount(sorted_problem[starts][shared_group], minlength=problems)
    first_column = np.concatenate(([0], np.cumsum(columns)[:-1]))
    column = (np.cumsum(shared_group) - 1)[group[shared]] - first_column[problem[shared]]
    return column, columns, shared


def _pair_sums(incidence: _Incidence) -> tuple[FloatMatrix, FloatMatrix]:
    """(problems, policies, policies): the sum of the Jaccard indices of the chunk's
    response pairs per policy pair, and how many pairs were summed."""
    problems, slots = incidence.valid.shape
    shape = (problems, incidence.policies, incidence.policies)
    sums, pairs = np.zeros(shape), np.zeros(shape)
    not_itself = ~np.eye(slots, dtype=np.bool_)
    for batch in _batches(incidence.columns, slots):
        width = max(1, int(incidence.columns[batch].max()))
        in_batch = (incidence.problem >= batch.start) & (incidence.problem < batch.stop)
        matrix = np.zeros((len(batch), slots, width), dtype=np.float32)
        matrix[
            incidence.problem[in_batch] - batch.start,
            incidence.slot[in_batch],
            incidence.column[in_batch],
        ] = 1.0
        # Exact counts in float32 (below 2**24); the ratios in float64.
        common = (matrix @ matrix.transpose(0, 2, 1)).astype(np.float64)
        sizes, valid = incidence.sizes[batch], incidence.valid[batch]
        union = sizes[:, :, None] + sizes[:, None, :] - common
        counted = valid[:, :, None] & valid[:, None, :] & (union > 0) & not_itself
        jaccard = np.divide(common, union, out=np.zeros_like(common), where=counted)
        blocks = (len(batch), *(incidence.policies, incidence.width) * 2)
        sums[batch] = jaccard.reshape(blocks).sum(axis=(2, 4))
        pairs[batch] = counted.reshape(blocks).sum(axis=(2, 4))
    return sums, pairs


def _batches(columns: IntArray, slots: int) -> list[range]:
    """Consecutive problems grouped so that each group's dense matrix stays under
    _BATCH_CELLS cells (a problem alone may exceed it)."""
    batches: list[range] = []
    start, widest = 0, 1
    for index, width in enumerate(columns.tolist()):
        widest_with = max(widest, width, 1)
        if index > start and (index + 1 - start) * slots * widest_with > _BATCH_CELLS:
            batches.append(range(start, index))
            start, widest_with = index, max(width, 1)
        widest = widest_with
    if columns.size:
        batches.append(range(start, columns.size))
    return batches

"""Two arms over paired seeds, from hand-made analysis.json documents: every number
checked against a plain loop over the documents."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rloop_operator.run_comparison import (
    Arms,
    along_steps,
    compare_figure,
    differential_forgetting,
    equal_steps,
    final_comparisons,
    mean_curve,
    own_similarity,
    table_figures,
    table_one,
    verdict,
)

from tests.unit.operator.two_arms import ARMS, OURS, THEIRS, ZERO3


def by_id(run_index: int, runs: list[Any], step: int, figure: str) -> dict[str, float]:
    analysis = runs[run_index].sets["h"]
    index = [i for i, p in enumerate(analysis.policies) if runs[run_index].rl_steps[p] == step][-1]
    values = analysis.per_problem[figure][index]
    return dict(zip(analysis.problem_ids, values.tolist(), strict=True))


def test_figures_are_compared_seed_by_seed_and_problem_by_problem() -> None:
    comparison = compare_figure(OURS, THEIRS, "h", "avg@4", (8, 8))

    differences = []
    for seed in range(2):
        ours, theirs = by_id(seed, OURS, 8, "avg@4"), by_id(seed, THEIRS, 8, "avg@4")
        differences.append(sum(ours[p] - theirs[p] for p in ours) / len(ours))
    assert comparison.difference.estimate == pytest.approx(sum(differences) / 2)
    assert comparison.ours == pytest.approx(np.mean([[1.0, 0.25, 0.5], [0.5, 0.75, 0.25]]))
    assert comparison.difference.seeds == 2


def test_equal_steps_and_the_figures_every_run_has() -> None:
    assert equal_steps(ARMS.runs, "h") == [0, 4, 8]  # vanilla-s0's step 6 is its own
    assert table_figures(ARMS.runs, "h") == ["avg@4", "pass@4"]  # pass@1 is avg@4
    assert [c.figure for c in table_one(ARMS, "h")] == ["avg@4", "pass@4"]
    assert {c.ours_steps for c in table_one(ARMS, "h")} == {8}
    assert [(c.ours_steps, c.figure) for c in along_steps(ARMS, "h")][:3] == [
        (0, "avg@4"), (0, "pass@4"), (4, "avg@4"),
    ]  # fmt: skip


def test_differential_forgetting_is_theirs_minus_ours_at_aligned_steps_mean_over_seeds() -> None:
    steps, difference = differential_forgetting(OURS, THEIRS, "h")

    assert steps == [0, 4, 8]
    # seed 0: vanilla's rows/columns at steps 0, 4, 8 are its policies 0, 1, 3
    seed0 = np.array([[0.0, 0.25, 0.5], [0.0] * 3, [0.0] * 3]) - np.array(ZERO3)
    seed1 = np.array([[0.0, 0.5, 0.75], [0.0, 0.0, 0.25], [0.0] * 3]) - np.array(
        [[0.0, 0.5, 0.25], [0.0] * 3, [0.0] * 3]
    )
    np.testing.assert_allclose(difference, (seed0 + seed1) / 2)


def test_own_similarity_is_the_diagonal_per_evaluated_step() -> None:
    assert own_similarity(THEIRS, "h") == {0: [0.3, 0.3], 4: [0.4, 0.35], 6: [0.5], 8: [0.45, 0.5]}


def test_curves_are_averaged_over_the_runs_that_recorded_the_step() -> None:
    assert mean_curve(THEIRS, "token_entropy") == ((1, pytest.approx(0.3)), (2, 0.7), (3, 0.3))
    assert mean_curve(THEIRS, "grad_norm") == ()


def test_final_comparisons_take_each_arms_last_policy() -> None:
    finals = final_comparisons(Arms("RLoop", "vanilla", (OURS[0],), (THEIRS[0],)))

    assert [(c.figure, c.ours_steps, c.theirs_steps) for c in finals] == [
        ("avg@4", 8, 8), ("pass@4", 8, 8),
    ]  # fmt: skip


def test_the_sentence_follows_the_intervals() -> None:
    ahead = compare_figure(OURS, THEIRS, "h", "avg@4", (8, 8))
    behind = compare_figure(THEIRS, OURS, "h", "avg@4", (8, 8))
    level = compare_figure(OURS, OURS, "h", "avg@4", (8, 8))

    assert ahead.difference.sign == 1 and behind.difference.sign == -1
    assert verdict([ahead, level], "RLoop", "vanilla").startswith(
        "RLoop ahead of vanilla after 8 RL steps (2 seed pairs, paired bootstrap 95% intervals): "
        "h avg@4 +"
    )
    assert verdict([behind], "RLoop", "vanilla").startswith("RLoop behind vanilla")
    assert verdict([level], "RLoop", "vanilla").startswith(
        "No difference detected at this power between RLoop and vanilla"
    )
    assert "ahead of vanilla on some figures and behind on others" in verdict(
        [ahead, behind], "RLoop", "vanilla"
    )


def test_unpaired_arms_are_refused() -> None:
    with pytest.raises(ValueError, match="as many runs of each arm"):
        compare_figure(OURS, THEIRS[:1], "h", "avg@4", (8, 8))

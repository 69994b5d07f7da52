"""Two hand-made arms of two seeds each, as parsed analysis.json documents: RLoop (steps
0, 4, 8) and vanilla (seed 0 also evaluated at step 6), on one set `h` of three problems,
seed 1's problems in another order."""

from __future__ import annotations

from typing import Any

from rloop_operator.run_comparison import Arms, parse_analysis


def document(
    steps: list[int],
    avg: list[list[float]],
    forgetting: list[list[float]],
    own: list[float],
    problem_ids: list[str] | None = None,
    entropy: list[list[float]] | None = None,
) -> dict[str, Any]:
    """An analysis.json with one set `h`: a policy per RL step, avg@4 and pass@4 per problem
    (pass@4 = avg@4 squared, any numbers do), and the given forgetting and own similarity."""
    labels = ["base" if s == 0 else f"at {s}" for s in steps]
    size = len(steps)
    similarity = [[own[i] if i == j else 0.1 for j in range(size)] for i in range(size)]
    return {
        "policies": [{"label": x, "rl_steps": s} for x, s in zip(labels, steps, strict=True)],
        "sets": {
            "h": {
                "policies": labels,
                "problem_ids": problem_ids or [f"p{i}" for i in range(len(avg[0]))],
                "forgetting": forgetting,
                "similarity": similarity,
                "per_problem": {
                    "avg@4": avg,
                    "pass@1": avg,
                    "pass@4": [[v * v for v in row] for row in avg],
                },
            }
        },
        "training": {"token_entropy": entropy or [[1, 0.5], [2, 0.7]]},
        "iteration_starts": [0],
    }


ZERO3 = [[0.0] * 3 for _ in range(3)]
OURS = [
    parse_analysis(
        "rloop-s0",
        document([0, 4, 8], [[0.5, 0.0, 1.0], [0.75, 0.25, 1.0], [1.0, 0.25, 0.5]], ZERO3,
                 [0.3, 0.25, 0.2]),
    ),
    parse_analysis(
        "rloop-s1",
        # the same problems in another order: comparisons pair them by id
        document([0, 4, 8], [[1.0, 0.5, 0.0], [1.0, 0.5, 0.5], [0.5, 0.75, 0.25]],
                 [[0.0, 0.5, 0.25], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [0.3, 0.2, 0.2],
                 problem_ids=["p2", "p0", "p1"]),
    ),
]  # fmt: skip
THEIRS = [
    parse_analysis(
        "vanilla-s0",
        document([0, 4, 6, 8],
                 [[0.5, 0.0, 1.0], [0.5, 0.0, 1.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.5]],
                 [[0.0, 0.25, 0.0, 0.5], [0.0] * 4, [0.0] * 4, [0.0] * 4], [0.3, 0.4, 0.5, 0.45],
                 entropy=[[1, 0.1], [3, 0.3]]),
    ),
    parse_analysis(
        "vanilla-s1",
        document([0, 4, 8], [[1.0, 0.5, 0.0], [0.25, 0.0, 0.0], [0.0, 0.0, 0.25]],
                 [[0.0, 0.5, 0.75], [0.0, 0.0, 0.25], [0.0, 0.0, 0.0]], [0.3, 0.35, 0.5],
                 problem_ids=["p2", "p0", "p1"]),
    ),
]  # fmt: skip
ARMS = Arms("RLoop", "vanilla", tuple(OURS), tuple(THEIRS))

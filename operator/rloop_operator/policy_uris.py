"""Which policy each iteration starts from and hands on. Pure: spec and layout in, URIs out."""

from __future__ import annotations

from rloop_operator.api import RLoopRunSpec
from rloop_operator.layout import RunLayout


def starting_policy(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> str:
    """theta_i: the base model for the first iteration, then the last RFT output; a vanilla
    window starts from the end point of the window before (whose checkpoint it resumes)."""
    if iteration == 0:
        return spec.model.base
    if spec.mode == "vanilla":
        return layout.rl_policy(iteration - 1)
    return layout.policy(iteration)


def produced_policy(spec: RLoopRunSpec, layout: RunLayout, iteration: int) -> str:
    """The policy an iteration hands on: RFT's output, or the DAPO end point in vanilla mode."""
    return layout.rl_policy(iteration) if spec.mode == "vanilla" else layout.policy(iteration + 1)

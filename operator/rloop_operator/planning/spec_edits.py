"""What an edit of a run's spec does once the run exists. Pure.

The CRD refuses, with CEL transition rules, edits of what the run's artifacts depend on:
model, data, storage, mode, seed, resources.launcher, and the layout of the checkpoints a
phase resumes from (resources.nodes, resources.gpusPerNode, dapo.zeroStage,
rft.zeroStage); iterations may only grow. Every other field may change at any time and
applies to the children created after the edit (a retry or a resume of the current stage
included); a running child is never changed or restarted by an edit.

Succeeded and Failed are final, except for the edits that remove their cause:
- growing spec.iterations of a Succeeded rloop run continues from its last policy;
- raising spec.maxRetries of a run that Failed on exhausted retries retries the stage;
- fixing the spec of a run that Failed on InvalidSpec (unusable when it was created,
  so nothing ever ran) starts it.
A spec that becomes unusable while the run is under way does not fail it: the run holds
(condition Blocked, reason InvalidSpec), its running child goes on, no new child starts,
and the run continues when the spec is fixed.
"""

from __future__ import annotations

from rloop_operator.api import RLoopRunSpec, RLoopRunStatus
from rloop_operator.lifecycle import Phase

INVALID_SPEC = "InvalidSpec"
STAGE_FAILED = "StageFailed"


def reopening(spec: RLoopRunSpec, status: RLoopRunStatus, failures: int) -> str | None:
    """Why this spec reopens a finished run (the event's message), or None if it stays
    finished. `failures` counts the failed children of the stage the run stopped in."""
    if status.phase is Phase.SUCCEEDED and status.iteration < spec.total_iterations:
        return (
            f"spec.iterations grew to {spec.iterations}: iteration {status.iteration + 1} "
            f"starts from {status.policy}"
        )
    if status.phase is not Phase.FAILED:
        return None
    if status.reason == INVALID_SPEC:
        return "the spec is usable now: the run starts"
    if status.reason == STAGE_FAILED and failures <= spec.max_retries:
        return (
            f"spec.maxRetries raised to {spec.max_retries}: {status.stage.value} of iteration "
            f"{status.iteration + 1} is retried"
        )
    return None

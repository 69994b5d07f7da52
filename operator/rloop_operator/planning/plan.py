"""Every decision of the operator: plan(run, observed, now) -> actions + new status.

Pure: no I/O, no clock, no randomness. The same inputs always give the same plan,
so an operator restarted at any moment re-derives exactly what to do from the
run's status and its children. Handlers gather the inputs and carry out the
actions (handlers.py, kube.py); `rloop run` drives the same function locally.

One iteration is a sequence of stages, each run by one child:

    rloop:    Exploring (DAPO) -> Filtering -> Consolidating (RFT) [-> Evaluating]
    vanilla:  Exploring (the next window of one DAPO run)          [-> Evaluating]

With validation sets, iteration 0 first evaluates the base policy (EvaluatingBase).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rloop_operator.api import IterationRecord, RLoopRunSpec, SpecError
from rloop_operator.children import Child, child_name
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.actions import (
    CreateChild,
    DeleteChild,
    Plan,
    ReadReport,
)
from rloop_operator.planning.attempts import (
    SUSPENDED,
    earlier_attempt_writing,
    end_early,
    failed_attempts,
    note_preempted,
    stall,
)
from rloop_operator.planning.best_policy import note_best, record_base_report
from rloop_operator.planning.blockers import Blocker, missing_object
from rloop_operator.planning.disruptions import (
    attempt_disrupted,
    beyond_limit,
    new_disruptions,
    reason_of,
    record_disruptions,
)
from rloop_operator.planning.inputs import Observed, PlanSettings, RunView
from rloop_operator.planning.spec_edits import STAGE_FAILED
from rloop_operator.planning.status_draft import StatusDraft
from rloop_operator.planning.transitions import (
    block,
    fail,
    note_ignored_fields,
    refused_or_backing_off,
    release_children,
    reopen,
    unblock,
    unusable_spec,
)
from rloop_operator.policy_uris import produced_policy
from rloop_operator.stage_reports import StageReport
from rloop_operator.stages import iteration_stages, launcher_for, stage_info, stages_of

DEFAULT_SETTINGS = PlanSettings()


def unsatisfiable(spec: RLoopRunSpec) -> str | None:
    """Spec combinations the schema cannot see but no cluster can run."""
    if spec.resources.gpus_per_node == 0 and spec.dapo.engine == "vllm":
        return (
            "spec.dapo.engine: vllm needs GPUs; set spec.resources.gpusPerNode >= 1 "
            "or spec.dapo.engine: hf"
        )
    return None


def plan(
    run: RunView, observed: Observed, now: datetime, settings: PlanSettings = DEFAULT_SETTINGS
) -> Plan:
    """Decide what to do next for one run, given everything observed about it."""
    draft = StatusDraft(run, now)
    note_ignored_fields(draft)
    spec = run.spec
    problem = str(spec) if isinstance(spec, SpecError) else unsatisfiable(spec)
    if problem is not None:
        return unusable_spec(draft, observed, problem)
    assert isinstance(spec, RLoopRunSpec)
    total = spec.total_iterations
    if draft.status.phase.is_terminal and not reopen(draft, spec, _stopped_stage_failures(draft)):
        return release_children(draft, observed).finish(total)
    if draft.status.started_at is None:
        draft.update(started_at=now, policy=spec.model.base)
    blocker = missing_object(
        spec,
        run.namespace,
        observed.unserved_kinds,
        observed.missing_prerequisites,
        observed.missing_claim,
    )
    if blocker is not None:
        return block(draft, blocker, settings, total)
    unblock(draft)
    # Each pass consumes one finished stage, so a single reconcile moves from a
    # succeeded child straight to creating the next one.
    for _ in range(len(stages_of(spec)) * total + 1):
        if not _advance(draft, spec, observed, settings):
            break
    note_best(draft, spec)
    return release_children(draft, observed).finish(total)


def _stopped_stage_failures(draft: StatusDraft) -> int:
    """Failed children of the stage a finished run stopped in."""
    status = draft.status
    if status.stage is Stage.NONE:
        return 0
    return _failures(draft.record(status.iteration), draft.run.name, status.iteration, status.stage)


def _advance(
    draft: StatusDraft, spec: RLoopRunSpec, observed: Observed, settings: PlanSettings
) -> bool:
    """Take one step for the current stage; True when a stage finished and planning goes on."""
    status = draft.status
    index = status.iteration
    if index >= spec.total_iterations:
        _succeed(draft)
        return False
    stages = iteration_stages(spec, index)
    if status.stage is Stage.NONE:
        draft.update(stage=stages[0])
        draft.update_record(index, started_at=draft.record(index).started_at or draft.now)
    stage = draft.status.stage
    retry = _failures(draft.record(index), draft.run.name, index, stage)
    name = child_name(draft.run.name, index, stage, retry)
    child = next((c for c in observed.children if c.name == name), None)
    if child is None:
        if not refused_or_backing_off(draft, spec, name, stage, observed, settings):
            _start_child(draft, spec, observed, name, index, stage)
        return False
    if child.deleting:
        if spec.suspend:
            _suspend(draft)
        else:
            note_preempted(draft, child, "its pods have stopped and it is created again")
        draft.requeue(2.0)
        return False
    if child.phase is not Phase.SUCCEEDED:
        outcome = _disruption(draft, spec, child, observed, settings)
        if outcome is not None:
            return outcome
    if not child.phase.is_terminal:
        if spec.suspend:
            draft.act(DeleteChild(child.name, child.kind))
            _suspend(draft)
            return False
        draft.update(phase=Phase.RUNNING, active_child=name)
        ended = end_early(draft, spec, child, observed.pods)
        if ended is None:
            return False
        draft.act(DeleteChild(child.name, child.kind))
        return _record_failure(draft, spec, ended, settings)
    if child.phase is Phase.SUCCEEDED:
        return _complete_stage(draft, spec, observed, child, stages)
    return _record_failure(draft, spec, child, settings)


def _disruption(
    draft: StatusDraft,
    spec: RLoopRunSpec,
    child: Child,
    observed: Observed,
    settings: PlanSettings,
) -> bool | None:
    """None unless the child's attempt was disrupted (planning/disruptions); then, like
    _advance, whether planning goes on."""
    found = new_disruptions(draft, child, observed)
    if found:
        record_disruptions(draft, spec, child, found)
    if not attempt_disrupted(draft, child, observed):
        return None
    if found and beyond_limit(draft, spec, child):
        if not child.phase.is_terminal:
            draft.act(DeleteChild(child.name, child.kind))
        message = f"{found[-1].message} (beyond spec.maxDisruptions={spec.max_disruptions})"
        failed = replace(child, phase=Phase.FAILED, reason=reason_of(found[-1]), message=message)
        return _record_failure(draft, spec, failed, settings)
    if child.phase is Phase.PENDING and child.reason == SUSPENDED:
        draft.update(phase=Phase.RUNNING, active_child=child.name)
        note_preempted(draft, child, "Kueue admits it again")
        return False
    if not found and child.phase is not Phase.FAILED:
        return None  # an old disruption, handled: the child was ended already
    draft.act(DeleteChild(child.name, child.kind))
    draft.update(active_child=None)
    note_preempted(draft, child, "its pods have stopped and it is created again")
    draft.requeue(2.0)
    return False


def _failures(record: IterationRecord, run_name: str, index: int, stage: Stage) -> int:
    return len(failed_attempts(record, run_name, index, stage))


def _start_child(
    draft: StatusDraft, spec: RLoopRunSpec, observed: Observed, name: str, index: int, stage: Stage
) -> None:
    status = draft.status
    if draft.run.deleting:
        return
    if spec.suspend:
        _suspend(draft)
        return
    if status.retry_after is not None and draft.now < status.retry_after:
        draft.update(phase=Phase.RUNNING)
        draft.requeue((status.retry_after - draft.now).total_seconds())
        if status.reason and status.message:  # why the last attempt failed (_record_failure)
            stall(draft, Blocker(status.reason, status.message), announce=False)
        return
    if earlier_attempt_writing(draft, observed.pods, name, index, stage):
        draft.update(phase=Phase.RUNNING)
        return
    draft.act(CreateChild(name, index, stage))
    if status.active_child != name:
        verb = "resumed" if status.phase is Phase.SUSPENDED else "created"
        draft.event(
            "Normal",
            "ChildCreated",
            f"{verb} {launcher_for(spec, stage).kind} {name}: iteration {index + 1}/"
            f"{spec.total_iterations}, {stage.value}",
        )
    draft.update_record(index, **{stage_info(stage).record_field: name})
    draft.update(
        phase=Phase.RUNNING, active_child=name, retry_after=None, reason=None, message=None
    )


def _suspend(draft: StatusDraft) -> None:
    if draft.status.phase is not Phase.SUSPENDED:
        draft.event("Normal", "Suspended", "run suspended; the store keeps all artifacts")
    draft.update(phase=Phase.SUSPENDED, active_child=None)


def _complete_stage(
    draft: StatusDraft,
    spec: RLoopRunSpec,
    observed: Observed,
    child: Child,
    stages: tuple[Stage, ...],
) -> bool:
    index, stage, layout = child.iteration, child.stage, draft.run.layout
    leaves = stage_info(stage).report
    if leaves is not None:
        report = observed.reports.get(child.name)
        if report is None:
            draft.act(ReadReport(child.name, leaves.uri(layout, index), leaves))
            return False
        if leaves.of_base_policy:
            record_base_report(draft, report, child.name)
        else:
            _record_report(draft, index, report, child.name)
    draft.event("Normal", "StageSucceeded", f"{child.name} succeeded ({stage.value})", child.name)
    position = stages.index(stage)
    if position + 1 < len(stages):
        draft.update(stage=stages[position + 1], active_child=None)
        return True
    policy = produced_policy(spec, layout, index)
    draft.update_record(index, finished_at=draft.now, policy=policy)
    draft.update(iteration=index + 1, stage=Stage.NONE, policy=policy, active_child=None)
    draft.event(
        "Normal",
        "IterationCompleted",
        f"iteration {index + 1}/{spec.total_iterations} completed; policy {policy}",
    )
    return True


def _record_report(draft: StatusDraft, index: int, report: StageReport, child: str) -> None:
    if report.error is not None:
        draft.event("Warning", "ReportUnavailable", f"{child}: {report.error}")
        return
    record = draft.record(index)
    counts = {
        "trajectories": report.trajectories,
        "hard_prompts": report.hard_prompts,
        "expert_samples": report.expert_samples,
        "train_score": report.train_score,
    }
    known = {key: value for key, value in counts.items() if value is not None}
    draft.update_record(index, metrics={**record.metrics, **report.metrics}, **known)
    latest = {key: known[key] for key in ("expert_samples", "train_score") if key in known}
    draft.update(**latest)
    if report.incomplete is not None:
        draft.event("Warning", "ReportIncomplete", f"{child}: {report.incomplete}")


def _record_failure(
    draft: StatusDraft, spec: RLoopRunSpec, child: Child, settings: PlanSettings
) -> bool:
    record = draft.record(child.iteration)
    if child.name not in record.failed_jobs:
        draft.update_record(child.iteration, failed_jobs=(*record.failed_jobs, child.name))
    if child.permanent:
        # Bad input fails every retry the same way; each retry would cost a pod start and
        # a model load on every GPU. The trainer's line is the message a person acts on.
        fail(draft, child.reason or STAGE_FAILED, child.message, spec.total_iterations, child.name)
        return False
    failures = _failures(
        draft.record(child.iteration), draft.run.name, child.iteration, child.stage
    )
    cause = f"{child.kind} {child.name} failed ({child.reason or 'no reason'}): " + (
        child.message or "no message"
    )
    if failures > spec.max_retries:
        logs = launcher_for(spec, child.stage).logs_hint(draft.run.namespace, child.name)
        message = (
            f"{cause}. Gave up after {failures - 1} retries (spec.maxRetries={spec.max_retries}); "
            f"read the logs with `{logs}`. Completed iterations stay in the store."
        )
        fail(draft, STAGE_FAILED, message, spec.total_iterations, child.name)
        return False
    backoff = min(settings.backoff_base_seconds * 2 ** (failures - 1), settings.backoff_cap_seconds)
    retrying = f"{cause}; retry {failures}/{spec.max_retries} in {backoff:.0f}s"
    draft.event("Warning", "Retrying", retrying, child.name)
    draft.update(
        retry_after=draft.now + timedelta(seconds=backoff),
        active_child=None,
        reason=child.reason or "Retrying",
        message=retrying,
    )
    return True


def _succeed(draft: StatusDraft) -> None:
    if draft.status.phase is not Phase.SUCCEEDED:
        draft.event(
            "Normal", "Succeeded", f"all iterations done; final policy {draft.status.policy}"
        )
    draft.update(
        phase=Phase.SUCCEEDED,
        stage=Stage.NONE,
        active_child=None,
        reason="Succeeded",
        message=f"final policy {draft.status.policy}",
        finished_at=draft.status.finished_at or draft.now,
    )

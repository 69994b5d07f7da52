"""One reconcile of one run: read the run and its children, plan, carry out the plan.

Synchronous and free of kopf, so it runs the same under the kopf handlers and in
tests against a real API server. The clock is a seam: tests pass their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rloop_operator import prometheus
from rloop_operator.api import RLoopRunSpec, SpecError, parse_status
from rloop_operator.children import Child, observe_child
from rloop_operator.clock import utcnow
from rloop_operator.disrupted_pods import DisruptedPods, with_remembered
from rloop_operator.kube import ChildRefused, Kube
from rloop_operator.kueue_workloads import WorkloadEvictions, evictions_by_child
from rloop_operator.launchers import Prerequisite
from rloop_operator.manifests import child_manifest
from rloop_operator.planning.actions import CreateChild, DeleteChild, EmitEvent, Plan, ReadReport
from rloop_operator.planning.attempts import pods_to_read
from rloop_operator.planning.inputs import Observed, Refusal, RunView
from rloop_operator.planning.plan_loop import plan_until_settled
from rloop_operator.pods import PodState
from rloop_operator.settings import OperatorSettings
from rloop_operator.stage_reports import StageReport, report_from_messages
from rloop_operator.stages import launcher_for, prerequisites, stages_of
from rloop_operator.trainer_failures import with_trainer_failure
from rloop_operator.unknown_fields import parse_cluster_spec

log = logging.getLogger(__name__)

# Runs that are not finished are looked at again at least this often, so a lost
# watch event can delay a transition but never stall it.
RESYNC_SECONDS = 60.0


def run_view(obj: dict[str, Any]) -> RunView:
    metadata = obj["metadata"]
    spec: RLoopRunSpec | SpecError
    ignored: tuple[str, ...] = ()
    try:
        spec, ignored = parse_cluster_spec(obj.get("spec") or {})
    except SpecError as exc:
        spec = exc
    return RunView(
        name=metadata["name"],
        namespace=metadata["namespace"],
        uid=metadata["uid"],
        generation=int(metadata.get("generation", 1)),
        spec=spec,
        status=parse_status(obj.get("status")),
        ignored_fields=ignored,
        deleting=bool(metadata.get("deletionTimestamp")),
    )


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        clock: Callable[[], datetime] = utcnow,
        disrupted: DisruptedPods | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        # The pod watch's memory of pods taken away (handlers wire the same one to both).
        self.disrupted = disrupted or DisruptedPods()

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one run one step closer to done; returns seconds until it needs a look."""
        obj = self.kube.get_run(namespace, name)
        if obj is None:
            prometheus.observe_phase(namespace, name, None)
            return None
        run = run_view(obj)
        listed, unserved = self.kube.list_children(namespace, name, run.uid)
        observed_children = [child for child in map(observe_child, listed) if child is not None]
        pods = self._read_pods(run, observed_children)
        children = tuple(with_trainer_failure(child, pods) for child in observed_children)
        observed = Observed(
            children=children,
            missing_claim=self._missing_claim(run),
            missing_prerequisites=self._missing_prerequisites(run),
            unserved_kinds=unserved,
            pods=pods,
            kueue_evictions=self._kueue_evictions(run, children),
        )

        def read(action: ReadReport) -> StageReport:
            return self._read_report(run, action, children)

        def create(action: CreateChild) -> Refusal | None:
            return self._create(run, children, action)

        result = plan_until_settled(run, observed, self.clock(), self.settings.plan, read, create)
        self._apply(obj, run, children, result)
        prometheus.observe_phase(namespace, name, result.status.phase)
        if result.status.phase.is_terminal:
            return result.requeue_after
        return min(result.requeue_after or RESYNC_SECONDS, RESYNC_SECONDS)

    def _create(
        self, run: RunView, children: tuple[Child, ...], action: CreateChild
    ) -> Refusal | None:
        try:
            if self.kube.create_child(child_manifest(run, action, self.settings.manifests)):
                self._observe_start_latency(children)
        except ChildRefused as refused:
            log.warning("create of %s refused: %s", action.name, refused)
            return refused.refusal
        return None

    def _read_report(
        self, run: RunView, read: ReadReport, children: tuple[Child, ...]
    ) -> StageReport:
        """From the termination messages of the child's pods: the operator reads no
        Secrets, so it has no store credentials."""
        assert isinstance(run.spec, RLoopRunSpec)
        [child] = [c for c in children if c.name == read.child]
        selector = launcher_for(run.spec, child.stage).pod_selector(child.name)
        messages = self.kube.termination_messages(run.namespace, selector)
        report = report_from_messages(messages, read.report.parse)
        return report or StageReport(
            error=f"no pod of {child.name} left its report in a termination message "
            f"(pods selected by {selector}); the full report is {read.uri}"
        )

    def _read_pods(self, run: RunView, children: list[Child]) -> dict[str, list[PodState]]:
        """The pods of the children attempts.pods_to_read names, by the launcher's selector."""
        if not isinstance(run.spec, RLoopRunSpec):
            return {}
        spec = run.spec
        pods = {}
        for name, stage in pods_to_read(run, children).items():
            selector = launcher_for(spec, stage).pod_selector(name)
            listed = self.kube.list_pods(run.namespace, selector)
            pods[name] = with_remembered(listed, self.disrupted.selected(run.namespace, selector))
        return pods

    def _kueue_evictions(
        self, run: RunView, children: tuple[Child, ...]
    ) -> dict[str, WorkloadEvictions]:
        """What Kueue says of the run's children: read while one of a queued run is
        unfinished, so that a preemption Kueue undid before this reconcile still counts."""
        queued = isinstance(run.spec, RLoopRunSpec) and run.spec.resources.queue_name
        if not queued or all(child.phase.is_terminal for child in children):
            return {}
        return evictions_by_child(self.kube.list_workloads(run.namespace))

    def _missing_prerequisites(self, run: RunView) -> tuple[Prerequisite, ...]:
        if not isinstance(run.spec, RLoopRunSpec):
            return ()
        return tuple(
            needed
            for needed in prerequisites(run.spec, stages_of(run.spec))
            if not self.kube.object_exists(needed.resource, run.namespace, needed.name)
        )

    def _missing_claim(self, run: RunView) -> str | None:
        if not isinstance(run.spec, RLoopRunSpec) or run.spec.storage.volume is None:
            return None
        claim = run.spec.storage.volume.claim_name
        return None if self.kube.claim_exists(run.namespace, claim) else claim

    def _apply(
        self, obj: dict[str, Any], run: RunView, children: tuple[Child, ...], result: Plan
    ) -> None:
        """Record, then delete: a child is deleted only once the status says why. The
        plan's children were created already (_create_children)."""
        by_name = {child.name: child for child in children}
        if result.status != run.status:
            # Fields set to None are sent as null so the merge patch removes them.
            self.kube.patch_status(
                run.namespace, run.name, result.status.model_dump(mode="json", by_alias=True)
            )
            prometheus.observe_disruptions(run.status, result.status)
        for delete in (a for a in result.actions if isinstance(a, DeleteChild)):
            self.kube.delete_child(delete.kind, run.namespace, delete.name)
        events = [a for a in result.actions if isinstance(a, EmitEvent)]
        for event in events:
            self.kube.emit_event(obj, event.type, event.reason, event.message)
            self._observe_stage(event, by_name.get(event.child or ""))
        prometheus.observe_events(events)

    def _observe_start_latency(self, children: tuple[Child, ...]) -> None:
        finished = [c.finished_at for c in children if c.finished_at is not None]
        if finished:
            prometheus.START_LATENCY.observe((self.clock() - max(finished)).total_seconds())

    def _observe_stage(self, event: EmitEvent, child: Child | None) -> None:
        if child is None or child.finished_at is None or child.created_at is None:
            return
        seconds = (child.finished_at - child.created_at).total_seconds()
        if event.reason == "Retrying":
            prometheus.RETRIES.labels(stage=child.stage.value).inc()
        prometheus.STAGE_SECONDS.labels(stage=child.stage.value, outcome=child.phase.value).observe(
            seconds
        )

"""The workload layer of the e2e tests: it finishes the children the operator creates.

There are no nodes, so nothing runs the pods. A background thread plays the training
operator for PyTorchJobs (kubeflow.org/v1), Kubeflow Trainer for TrainJobs
(trainer.kubeflow.org/v1alpha1) and the end of the Job controller's work for batch/v1 Jobs,
all labelled `rloop.io/run`: each child goes Running, stays so for
`WorkloadPolicy.running_s`, then Succeeded or Failed through the status subresource. A kind
whose CRD is not installed is skipped.

Only what really ran finishes: a PyTorchJob or TrainJob goes Running once the layer has
created the pods its controllers would (stand_in_pods.py) through the API server's admission,
and a Job finishes once the Job controller's pod exists. A pod that admission refuses (Pod
Security in a restricted namespace) leaves its child Pending, as the real controllers would,
and its message in `WorkloadLayer.refusals`.

Observed against kube-controller-manager v1.37: the Job controller sets startTime and
active=1 even when admission refuses its pod, creates the pod otherwise (it stays Pending),
and leaves a Job alone once it carries a Complete or Failed condition, so the patched
terminal status is kept.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes

from .child_status import (
    Outcome,
    decide_outcome,
    is_finished,
    job_finished_status,
    pytorchjob_finished_status,
    pytorchjob_running_status,
    trainjob_finished_status,
    trainjob_running_status,
)
from .controlplane import ControlPlane, KubectlError
from .stand_in_pods import pytorchjob_pods, trainjob_pods

RUN_LABEL = "rloop.io/run"
POLL_S = 0.2
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class TrainingKind:
    """A training child kind whose controller the layer plays."""

    kind: str
    resource: tuple[str, str, str]  # group, version, plural
    running: Callable[[str, str], dict[str, Any]]
    finished: Callable[[str, Mapping[str, Any], Outcome, str], dict[str, Any]]
    pods: Callable[[Any, Mapping[str, Any]], list[dict[str, Any]]]  # (CustomObjectsApi, child)


def _trainjob_pods(custom: Any, trainjob: Mapping[str, Any]) -> list[dict[str, Any]]:
    ref = trainjob["spec"]["runtimeRef"]
    group, version = "trainer.kubeflow.org", "v1alpha1"
    if ref["kind"] == "ClusterTrainingRuntime":
        runtime = custom.get_cluster_custom_object(
            group, version, "clustertrainingruntimes", ref["name"]
        )
    else:
        namespace = trainjob["metadata"]["namespace"]
        runtime = custom.get_namespaced_custom_object(
            group, version, namespace, "trainingruntimes", ref["name"]
        )
    return trainjob_pods(trainjob, runtime)


TRAINING_KINDS = (
    TrainingKind(
        "PyTorchJob",
        ("kubeflow.org", "v1", "pytorchjobs"),
        pytorchjob_running_status,
        pytorchjob_finished_status,
        lambda _, job: pytorchjob_pods(job),
    ),
    TrainingKind(
        "TrainJob",
        ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
        trainjob_running_status,
        trainjob_finished_status,
        _trainjob_pods,
    ),
)


@dataclass
class WorkloadPolicy:
    """How the simulated workloads end; `failures` maps a name fragment to a failure count,
    `messages` a name fragment to the termination message a succeeded Job's pod leaves
    (what the trainer's filter and eval phases write there)."""

    failures: dict[str, int] = field(default_factory=dict)
    running_s: float = 0.5
    messages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FinishedChild:
    kind: str
    name: str
    outcome: Outcome
    finished_at: float  # time.monotonic() when the terminal status was written


@dataclass
class WorkloadLayer:
    """Drives children in `namespace`; `history` lists every child it finished, in order."""

    plane: ControlPlane
    namespace: str
    policy: WorkloadPolicy
    history: list[FinishedChild] = field(default_factory=list)
    # pod name -> why admission refused it (the latest refusal)
    refusals: dict[str, str] = field(default_factory=dict)
    polls: int = 0  # passes over the namespace completed, for tests that wait on the layer
    _running_since: dict[str, float] = field(default_factory=dict)
    _failed_so_far: dict[str, int] = field(default_factory=dict)
    _paused: threading.Event = field(default_factory=threading.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def pause(self) -> None:
        """Freeze every child in its current state (e.g. while the operator is killed)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        self._stopped.set()

    def finished(self, kind: str) -> list[FinishedChild]:
        return [child for child in self.history if child.kind == kind]

    def run(self) -> None:
        api = self.plane.api_client()
        try:
            while not self._stopped.wait(POLL_S):
                if not self._paused.is_set():
                    core = kubernetes.client.CoreV1Api(api)
                    custom = kubernetes.client.CustomObjectsApi(api)
                    for kind in TRAINING_KINDS:
                        self._advance_training(custom, kind)
                    self._advance_jobs(kubernetes.client.BatchV1Api(api), core)
                    self.polls += 1
        except BaseException as error:  # surfaced by running_workload() in the test thread
            self.error = error

    def _advance_training(self, custom: Any, kind: TrainingKind) -> None:
        group, version, plural = kind.resource
        try:
            listed = custom.list_namespaced_custom_object(
                group, version, self.namespace, plural,
                label_selector=RUN_LABEL, _preload_content=False,
            )  # fmt: skip
        except kubernetes.client.ApiException as error:
            if error.status == 404:  # the kind's CRD is not installed in this cluster
                return
            raise
        for child in json.loads(listed.data)["items"]:
            name, status = child["metadata"]["name"], child.get("status") or {}
            if is_finished(status):
                continue
            outcome = None
            if not status:
                if not self._created(kind.pods(custom, child)):
                    continue
                new_status = kind.running(name, _now())
            elif (outcome := self._due_outcome(child)) is not None:
                new_status = kind.finished(name, status, outcome, _now())
            else:
                continue
            with _unless_gone():
                custom.patch_namespaced_custom_object_status(
                    group, version, self.namespace, plural, name,
                    {"status": new_status}, _content_type=MERGE_PATCH,
                )  # fmt: skip
                if outcome is not None:
                    self._record(kind.kind, name, outcome)

    def _advance_jobs(self, batch: Any, core: Any) -> None:
        listed = batch.list_namespaced_job(
            self.namespace, label_selector=RUN_LABEL, _preload_content=False
        )
        for job in json.loads(listed.data)["items"]:
            status = job.get("status") or {}
            # The API server refuses a finished Job without a startTime; the Job controller
            # sets one even when admission refuses the pod, so the pod must exist too.
            name = job["metadata"]["name"]
            if is_finished(status) or "startTime" not in status or not self._has_pod(core, name):
                continue
            if (outcome := self._due_outcome(job)) is None:
                continue
            with _unless_gone():
                if outcome == "Succeeded":
                    self._leave_termination_message(core, name)
                batch.patch_namespaced_job_status(
                    name, self.namespace,
                    {"status": job_finished_status(status, outcome, _now())},
                    _content_type=MERGE_PATCH,
                )  # fmt: skip
                self._record("Job", name, outcome)

    def _created(self, pods: list[dict[str, Any]]) -> bool:
        """Create the pods (those that exist stay); False when admission refuses one (Pod
        Security; or the namespace's ServiceAccount is not there yet, tried again next poll).
        Through kubectl: the typed client refuses what the API server takes (an integer
        extended resource quantity)."""
        for pod in pods:
            try:
                self.plane.kubectl("create", "-n", self.namespace, "-f", "-", stdin=json.dumps(pod))
            except KubectlError as refused:
                if "AlreadyExists" not in str(refused):
                    self.refusals[pod["metadata"]["name"]] = str(refused)
                    return False
        return True

    def _has_pod(self, core: Any, job: str) -> bool:
        selector = f"batch.kubernetes.io/job-name={job}"
        return bool(core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def _leave_termination_message(self, core: Any, job: str) -> None:
        """Play the kubelet: the Job's pod ends with its container's termination message."""
        message = next((m for f, m in self.policy.messages.items() if f in job), None)
        if message is None:
            return
        pods = core.list_namespaced_pod(
            self.namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
        )
        for pod in pods.items:
            container = pod.spec.containers[0]
            ended = {"exitCode": 0, "reason": "Completed", "message": message}
            status = {
                "name": container.name,
                "image": container.image,
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": ended},
            }
            core.patch_namespaced_pod_status(
                pod.metadata.name, self.namespace, {"status": {"containerStatuses": [status]}}
            )

    def _due_outcome(self, child: dict[str, Any]) -> Outcome | None:
        """The outcome of a child that has run long enough, else None (and start its clock)."""
        uid = child["metadata"]["uid"]
        since = self._running_since.setdefault(uid, time.monotonic())
        if time.monotonic() - since < self.policy.running_s:
            return None
        name = child["metadata"]["name"]
        outcome, fragment = decide_outcome(self.policy.failures, self._failed_so_far, name)
        if fragment is not None:
            self._failed_so_far[fragment] = self._failed_so_far.get(fragment, 0) + 1
        return outcome

    def _record(self, kind: str, name: str, outcome: Outcome) -> None:
        self.history.append(FinishedChild(kind, name, outcome, time.monotonic()))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _unless_gone() -> Iterator[None]:
    # A child deleted (404) or changed (409) since it was listed is seen again next poll.
    try:
        yield
    except kubernetes.client.ApiException as error:
        if error.status not in (404, 409):
            raise


@contextlib.contextmanager
def running_workload(
    plane: ControlPlane, namespace: str, policy: WorkloadPolicy | None = None
) -> Iterator[WorkloadLayer]:
    """Run the workload layer for `namespace` in a thread; re-raise its error on exit."""
    layer = WorkloadLayer(plane, namespace, policy or WorkloadPolicy())
    thread = threading.Thread(target=layer.run, name=f"workload-{namespace}", daemon=True)
    thread.start()
    try:
        yield layer
    finally:
        layer.stop()
        thread.join()
    if layer.error is not None:
        raise layer.error

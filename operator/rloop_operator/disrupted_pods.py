"""The last word of phase pods that Kubernetes took away, as the pod watch saw it.

An evicted pod, one preempted by the scheduler, or one on a lost node gets the condition
DisruptionTarget just before it is deleted, and it may be gone before the run's next
reconcile lists its attempt's pods: the Eviction API and the pod garbage collector delete
it at once, and kwok or a fast kubelet finish it in milliseconds. Without that condition
the attempt's end would look like any failure and count against spec.maxRetries. So the
pod watch keeps the last state of every pod it saw with the condition (a bounded memory:
a run records a disruption in its status at its next reconcile), and the reconciler adds
those pods to the ones it lists. What an operator restart forgets in between counts as a
failure, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rloop_operator.pods import PodState, pod_state

# Far more than the disrupted pods of every run between two reconciles (a minute at most).
REMEMBERED = 4096


class DisruptedPods:
    """Pods last seen with a disruption, by UID; thread-safe (the watch threads write)."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._limit = limit
        self._pods: OrderedDict[str, tuple[str, Mapping[str, str], PodState]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, pod: Mapping[str, Any]) -> None:
        """Keep `pod` (a core/v1 Pod as JSON) if Kubernetes is taking it away."""
        state = pod_state(pod)
        if state.disruption is None or not state.uid:
            return
        metadata = pod.get("metadata") or {}
        entry = (str(metadata.get("namespace", "")), dict(metadata.get("labels") or {}), state)
        with self._lock:
            self._pods[state.uid] = entry
            self._pods.move_to_end(state.uid)
            while len(self._pods) > self._limit:
                self._pods.popitem(last=False)

    def selected(self, namespace: str, pod_selector: str) -> list[PodState]:
        """The remembered pods in `namespace` that `pod_selector` (key=value[,key=value])
        selects."""
        wanted = dict(term.split("=", 1) for term in pod_selector.split(","))
        with self._lock:
            entries = list(self._pods.values())
        return [
            state
            for where, labels, state in entries
            if where == namespace and all(labels.get(k) == v for k, v in wanted.items())
        ]


def with_remembered(listed: list[PodState], remembered: list[PodState]) -> list[PodState]:
    """The listed pods, and the remembered ones no longer listed, marked gone: the listing
    is read from the API server after them, so a pod it lacks was deleted, and its last
    seen state (often Running, with a grace period) no longer says whether it may write."""
    present = {pod.uid for pod in listed}
    return [*listed, *(replace(pod, gone=True) for pod in remembered if pod.uid not in present)]

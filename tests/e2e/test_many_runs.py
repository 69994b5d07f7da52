"""Twenty runs at once complete; the test reports how fast the operator reacts."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Iterator

import kubernetes
import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import run_status
from tests.e2e.operator_process import OperatorProcess
from tests.unit.operator.world import spec_dict

pytestmark = pytest.mark.cluster
RUNS = 20


class ChildWatch:
    """Notes when each child is first seen, through watch streams (sub-second)."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.first_seen: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(plane, namespace, kind), daemon=True)
            for kind in ("pytorchjobs", "jobs")
        ]

    def _watch(self, plane: ControlPlane, namespace: str, kind: str) -> None:
        api = plane.api_client()
        lister = (
            kubernetes.client.BatchV1Api(api).list_namespaced_job
            if kind == "jobs"
            else lambda ns, **kw: kubernetes.client.CustomObjectsApi(
                api
            ).list_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", **kw)
        )
        while not self._stop.is_set():
            try:
                events = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                    lister, namespace, timeout_seconds=5
                )
                for event in events:
                    obj = event["object"]
                    name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
                    self.first_seen.setdefault(name, time.monotonic())
            except Exception as error:  # a broken stream is restarted; its error is kept
                self.errors.append(f"{kind}: {error!r}")

    def __enter__(self) -> ChildWatch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


@pytest.fixture()
def spec() -> Iterator[dict[str, object]]:
    # No filter reports exist; a file:// store makes their absence quick to find.
    yield spec_dict(storage={"uri": "file:///tmp/rloop-e2e-many"}, iterations=2)


def test_twenty_runs_at_once_complete_and_transitions_are_fast(
    control_plane: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    spec: dict[str, object],
) -> None:
    names = [f"run-{i:02d}" for i in range(RUNS)]
    policy = WorkloadPolicy(running_s=1.0)
    with (
        ChildWatch(control_plane, namespace) as watch,
        running_workload(control_plane, namespace, policy) as workload,
    ):
        for name in names:
            control_plane.kubectl(
                "apply",
                "-n",
                namespace,
                "-f",
                "-",
                stdin=json.dumps(
                    {
                        "apiVersion": "rloop.io/v1alpha1",
                        "kind": "RLoopRun",
                        "metadata": {"name": name},
                        "spec": spec,
                    }
                ),
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            phases = [run_status(control_plane, namespace, n).get("phase") for n in names]
            if all(p == "Succeeded" for p in phases):
                break
            time.sleep(1)
        finished = {child.name: child.finished_at for child in workload.history}
    assert phases == ["Succeeded"] * RUNS
    missed = [n for n in finished if n not in watch.first_seen]
    assert not missed, f"the watch missed {missed}; stream errors: {watch.errors}"
    latencies = []
    for name in names:
        order = [f"{name}-i{i:02d}-{s}" for i in range(2) for s in ("rl", "filter", "rft")]
        latencies += [
            watch.first_seen[nxt] - finished[prev] for prev, nxt in itertools.pairwise(order)
        ]
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"\n{RUNS} runs, {len(latencies)} transitions: child Succeeded -> next child "
        f"created p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    assert p99 < 30, "a transition waited for the resync instead of reacting to the event"

"""Many concurrent runs on a real API server: from a child's Succeeded to the next child.

Starts the test control plane (etcd, kube-apiserver, kube-controller-manager), installs
the chart, runs the operator as its ServiceAccount, and applies `--runs` RLoopRuns at
once (two iterations: DAPO, filter, RFT each, so five transitions a run); the tests'
workload layer finishes every child after `--running-s`. Reported: the latency from a
child's Succeeded (written by the workload layer) to the next child being seen by a
watch, p50 and p99 (goal: p50 < 0.5 s, p99 < 2 s on 2 cores), the operator's peak RSS,
and the reconciler's API requests per transition (rloop_api_requests_total). Baseline:
the same latency at `--baseline-runs` concurrent runs, so the ratio shows how it scales.

    PYTHONPATH=. .venv/bin/python bench/operator_scale.py [--runs 100] [--baseline-runs 10]

Measure on an idle machine only: under load the figures say little.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from tests.cluster.controlplane import ControlPlane, running_control_plane
from tests.cluster.devcluster import install_project_objects, project_crds
from tests.cluster.layout import ensure_binaries
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import create_namespace
from tests.e2e.operator_process import OperatorProcess, install_chart
from tests.e2e.test_many_runs import ChildWatch
from tests.unit.operator.world import spec_dict

STAGES = ("rl", "filter", "rft")
FILTER_REPORT = json.dumps({"rollouts": 64, "hard_prompts": 3, "kept_samples": 4})


@dataclass(frozen=True)
class Figures:
    runs: int
    transitions: int
    p50_s: float
    p99_s: float
    peak_rss_mib: float
    requests_per_transition: float
    wall_s: float


class PeakRss:
    """The highest VmRSS of a process, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            status = Path(f"/proc/{self.pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                self.peak_kib = max(self.peak_kib, int(match.group(1)))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


def api_requests(operator: OperatorProcess) -> float:
    lines = operator.metrics().splitlines()
    return sum(
        float(line.split()[-1]) for line in lines if line.startswith("rloop_api_requests_total{")
    )


def measure(plane: ControlPlane, operator: OperatorProcess, runs: int, running_s: float) -> Figures:
    namespace = f"scale-{runs}-{int(time.time())}"
    create_namespace(plane, namespace)
    names = [f"run-{i:03d}" for i in range(runs)]
    spec = spec_dict(storage={"uri": "file:///tmp/rloop-bench-scale"}, iterations=2)
    policy = WorkloadPolicy(running_s=running_s, messages={"-filter": FILTER_REPORT})
    requests_before = api_requests(operator)
    assert operator.process is not None
    started = time.monotonic()
    with (
        PeakRss(operator.process.pid) as rss,
        ChildWatch(plane, namespace) as watch,
        running_workload(plane, namespace, policy) as workload,
    ):
        manifests = [
            {"apiVersion": "rloop.io/v1alpha1", "kind": "RLoopRun",
             "metadata": {"name": name}, "spec": spec}
            for name in names
        ]  # fmt: skip
        listing = {"apiVersion": "v1", "kind": "List", "items": manifests}
        plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(listing))
        wait_for_all(plane, namespace, runs, started + 1800)
        finished = {child.name: child.finished_at for child in workload.history}
    wall = time.monotonic() - started
    latencies = sorted(
        watch.first_seen[nxt] - finished[prev]
        for name in names
        for prev, nxt in itertools.pairwise(
            f"{name}-i{i:02d}-{stage}" for i in range(2) for stage in STAGES
        )
        if prev in finished and nxt in watch.first_seen
    )
    transitions = len(latencies)
    return Figures(
        runs=runs,
        transitions=transitions,
        p50_s=statistics.median(latencies),
        p99_s=latencies[min(transitions - 1, int(0.99 * transitions))],
        peak_rss_mib=rss.peak_kib / 1024,
        requests_per_transition=(api_requests(operator) - requests_before) / max(transitions, 1),
        wall_s=wall,
    )


def wait_for_all(plane: ControlPlane, namespace: str, runs: int, deadline: float) -> None:
    """Until every run Succeeded, listing them once a poll (not one kubectl per run)."""
    custom = client.CustomObjectsApi(plane.api_client())
    shown: dict[str | None, int] = {}
    while time.monotonic() < deadline:
        listing = cast(
            dict[str, Any],
            custom.list_namespaced_custom_object("rloop.io", "v1alpha1", namespace, "rloopruns"),
        )
        phases = collections.Counter(
            (item.get("status") or {}).get("phase") for item in listing["items"]
        )
        if phases["Succeeded"] == runs:
            return
        if phases != shown:  # progress, so that a stall shows while it happens
            print(f"  runs by phase: {dict(phases)}", flush=True)
            shown = phases
        time.sleep(2)
    raise TimeoutError(f"not every run of {namespace} succeeded in time")


def report(figures: Figures) -> str:
    return (
        f"{figures.runs:4d} runs, {figures.transitions:4d} transitions in {figures.wall_s:5.0f} s: "
        f"Succeeded -> next child p50 {figures.p50_s * 1000:6.0f} ms, "
        f"p99 {figures.p99_s * 1000:6.0f} ms; operator peak RSS {figures.peak_rss_mib:5.0f} MiB; "
        f"{figures.requests_per_transition:5.1f} API requests per transition"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--baseline-runs", type=int, default=10)
    parser.add_argument("--running-s", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rloop-bench-scale-"))
    with running_control_plane(ensure_binaries(), work / "plane", project_crds()) as plane:
        install_project_objects(plane)
        kubeconfig = install_chart(plane, work)
        operator = OperatorProcess(kubeconfig, work / "operator.log")
        operator.start()
        assert operator.process is not None
        print(f"operator pid {operator.process.pid} (profile it with py-spy)", flush=True)
        try:
            baseline = measure(plane, operator, args.baseline_runs, args.running_s)
            print("baseline:", report(baseline), flush=True)
            ours = measure(plane, operator, args.runs, args.running_s)
            print("ours:    ", report(ours), flush=True)
            print(f"ratio p99 ours/baseline: {ours.p99_s / baseline.p99_s:.2f}")
        finally:
            operator.stop()


if __name__ == "__main__":
    main()

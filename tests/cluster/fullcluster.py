"""The full mode: a control plane with kube-scheduler, fake GPU nodes and the real controllers.

The fast mode (`controlplane.py` plus `workload.py`) writes children's statuses itself; here
the training operator, Kubeflow Trainer, JobSet, the Job controller and Kueue do their real
work and kwok plays the kubelet of N fake 8-GPU nodes, so a child becomes pods bound to
nodes whose lifecycle a test can script (`kwok.PodOutcome`).
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from . import kueue
from .controllers import Controller
from .controlplane import ControlPlane
from .kwok import SCRIPT_LABEL, PodOutcome, PodSelection, fake_gpu_node, scripted_stage
from .layout import FullLayout
from .procs import Server

READY_TIMEOUT_S = 180.0
POLL_S = 0.25


@dataclass
class FullCluster:
    """A started full-mode cluster; `kubeconfig` is cluster-admin.

    `started_in_s` is how long `start_full_cluster` took, binaries already built.
    """

    plane: ControlPlane
    layout: FullLayout
    kwok: Server
    controllers: dict[str, Controller]
    started_in_s: float = 0.0
    _nodes: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _scripts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def servers(self) -> list[Server]:
        """Every process of the cluster, in start order."""
        return [*self.plane.servers, self.kwok, *(c.server for c in self.controllers.values())]

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """kubectl as the admin; its stdout. Raises with stderr when it fails."""
        return self.plane.kubectl(*args, stdin=stdin).stdout

    def apply(self, *manifests: Mapping[str, Any]) -> None:
        """Server-side apply `manifests` as the admin, in one kubectl call."""
        listed = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(listed)
        )

    @functools.cached_property
    def core(self) -> kubernetes.client.CoreV1Api:
        """A CoreV1Api client as the admin."""
        return kubernetes.client.CoreV1Api(self.plane.api_client())

    def check_alive(self) -> None:
        """Raise, with the log tail, if any process of the cluster has exited."""
        for server in self.servers:
            server.check_alive()

    def log_tails(self, lines: int = 40) -> str:
        """The last `lines` of every process's log, for a failed test's report."""
        return "\n\n".join(
            f"--- {server.name} ({server.log_path}) ---\n{server.log_tail(lines)}"
            for server in self.servers
        )

    def add_gpu_nodes(
        self, count: int, gpus: int = 8, labels: Mapping[str, str] | None = None
    ) -> list[str]:
        """Create `count` fake nodes with `gpus` GPUs each and wait until kwok made them Ready."""
        names = [f"gpu-node-{next(self._nodes)}" for _ in range(count)]
        self.apply(*(fake_gpu_node(name, gpus, labels or {}) for name in names))
        # The TaintNodesByCondition admission plugin taints every new node not-ready; the
        # node lifecycle controller, which would lift it, does not run here.
        untainted = json.dumps({"spec": {"taints": None}})
        for name in names:
            self.kubectl("patch", "node", name, "--type=merge", "-p", untainted)
        self._wait(lambda: all(self._node_ready(name) for name in names), f"nodes {names} Ready")
        return names

    def script_pods(
        self,
        namespace: str,
        outcome: PodOutcome,
        labels: Mapping[str, str] | None = None,
        names: Sequence[str] = (),
    ) -> str:
        """Give the pods of `namespace` with all `labels` (and one of `names`, if given) the
        `outcome`; returns the Stage's name. Script before the pods start running."""
        stage_name = f"script-{namespace}-{next(self._scripts)}"
        selection = PodSelection(namespace, labels or {}, names)
        self.apply(scripted_stage(stage_name, selection, outcome))
        return stage_name

    def forget_scripts(self, namespace: str) -> None:
        """Delete every Stage `script_pods` made for `namespace`."""
        self.kubectl("delete", "stages.kwok.x-k8s.io", "-l", f"{SCRIPT_LABEL}={namespace}")

    def kueue_queue(
        self, namespace: str, name: str, gpu_quota: int = 0, preempt_lower_priority: bool = False
    ) -> None:
        """A LocalQueue `name` in `namespace` on a ClusterQueue of its own with `gpu_quota`
        GPUs (0: workloads asking for GPUs stay suspended) and ample CPU and memory; see
        `kueue.cluster_queue` for `preempt_lower_priority`."""
        self.apply(
            kueue.resource_flavor(),
            kueue.cluster_queue(namespace, name, gpu_quota, preempt_lower_priority),
            kueue.local_queue(namespace, name),
        )

    def set_gpu_quota(self, namespace: str, name: str, gpus: int) -> None:
        """Change the GPU quota of the ClusterQueue behind `kueue_queue(namespace, name)`."""
        patch = json.dumps(kueue.gpu_quota_patch(gpus))
        cluster_queue = kueue.cluster_queue_name(namespace, name)
        self.kubectl(
            "patch", "clusterqueue.kueue.x-k8s.io", cluster_queue, "--type=merge", "-p", patch
        )

    def evict_pod(self, namespace: str, name: str) -> None:
        """Evict the pod through the Eviction API, as `kubectl drain` does."""
        eviction = kubernetes.client.V1Eviction(
            metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace)
        )
        self.core.create_namespaced_pod_eviction(name, namespace, eviction)

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """The pods of `namespace` matching the label `selector`, as JSON objects."""
        listed: Any = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(listed.data)["items"]
        return items

    def events(self, namespace: str, involved_name: str | None = None) -> list[dict[str, Any]]:
        """Events in `namespace` (about the object `involved_name`, if given), oldest first."""
        selector = f"involvedObject.name={involved_name}" if involved_name else ""
        listed: Any = self.core.list_namespaced_event(
            namespace, field_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(listed.data)["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def stop(self) -> None:
        """Stop the controllers and kwok, then the control plane."""
        for controller in reversed(list(self.controllers.values())):
            controller.server.stop()
        self.kwok.stop()
        self.plane.stop()

    def _node_ready(self, name: str) -> bool:
        node = json.loads(self.kubectl("get", "node", name, "-o", "json"))
        conditions = node.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _wait(
        self, check: Callable[[], bool], what: str, timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout_s:.0f}s")
            time.sleep(POLL_S)

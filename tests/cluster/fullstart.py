"""Starting the full mode: CRDs, webhooks and certificates first, then every controller at
once, then readiness proved through the API server (webhooks answering, runtime installed,
nodes Ready)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from .controllers import (
    KUEUE,
    TRAINING_OPERATOR,
    Controller,
    rotator_secret,
    start_jobset,
    start_kueue,
    start_trainer,
    start_training_operator,
)
from .controlplane import ControlPlane, start_control_plane
from .fullcluster import READY_TIMEOUT_S, FullCluster
from .kwok import default_stages, start_kwok
from .layout import FullLayout
from .pki import WebhookPki, make_webhook_pki
from .procs import free_ports, wait_until
from .webhooks import loopback_conversions, loopback_webhooks, render_kustomization

# Ports per controller: webhook, then health probe.
PORT_COUNTS = {"training-operator": 2, "trainer": 2, "jobset": 2, "kueue": 2}
STARTERS: dict[str, Callable[..., Controller]] = {
    "training-operator": start_training_operator,
    "trainer": start_trainer,
    "jobset": start_jobset,
    "kueue": start_kueue,
}


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _allocate_ports() -> dict[str, list[int]]:
    ports = iter(free_ports(sum(PORT_COUNTS.values())))
    return {name: [next(ports) for _ in range(count)] for name, count in PORT_COUNTS.items()}


def _crd_files(
    plane: ControlPlane, layout: FullLayout, ports: dict[str, list[int]], ca_pem: bytes, out: Path
) -> list[Path]:
    """The controllers' CRDs as their projects install them, conversion webhooks on loopback."""
    jobset = render_kustomization(plane, layout.jobset_module / "config/components/crd")
    kueue = render_kustomization(plane, layout.kueue_module / "config/components/crd")
    crds = [
        load_yaml(layout.kwok_module / "kustomize/crd/bases/kwok.x-k8s.io_stages.yaml"),
        *render_kustomization(plane, layout.trainer_module / "manifests/base/crds"),
        *loopback_conversions(jobset, ports["jobset"][0], ca_pem),
        *loopback_conversions(kueue, ports["kueue"][0], ca_pem),
    ]
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for crd in crds:
        path = out / f"{crd['metadata']['name']}.json"
        path.write_text(json.dumps(crd))
        files.append(path)
    return files


def _webhook_configurations(
    plane: ControlPlane, layout: FullLayout, ports: dict[str, list[int]], ca_pem: bytes
) -> list[dict[str, Any]]:
    sources = [
        (layout.training_operator_module / "manifests/base/webhook", "training-operator", ""),
        (layout.trainer_module / "manifests/base/webhook", "trainer", ""),
        (layout.jobset_module / "config/components/webhook", "jobset", "jobset-"),
        (layout.kueue_module / "config/components/webhook", "kueue", "kueue-"),
    ]
    return [
        configuration
        for directory, name, prefix in sources
        for configuration in loopback_webhooks(
            render_kustomization(plane, directory), ports[name][0], ca_pem, prefix
        )
    ]


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _install_before_start(
    cluster: FullCluster, pki: WebhookPki, ports: dict[str, list[int]], complete_after_s: float
) -> None:
    """Everything the controllers expect to find when they start."""
    ca_pem = pki.ca.cert.read_bytes()
    webhooks = _webhook_configurations(cluster.plane, cluster.layout, ports, ca_pem)
    cluster.apply(
        _namespace(TRAINING_OPERATOR.namespace),
        _namespace(KUEUE.namespace),
        rotator_secret(TRAINING_OPERATOR, pki),
        rotator_secret(KUEUE, pki),
        *webhooks,
        *default_stages(cluster.layout.kwok_module, complete_after_s),
    )


def _dry_run_probes() -> list[dict[str, Any]]:
    """Objects whose server-side dry run passes through the training operator's and
    JobSet's webhooks (the runtime and the first queue pass through the other two)."""
    container = {"name": "pytorch", "image": "probe", "command": ["true"]}
    pod = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    pytorchjob = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": pod}}},
    }
    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": pod}}}]},
    }
    return [pytorchjob, jobset]


def _wait_ready(cluster: FullCluster, deadline: float) -> None:
    for name, controller in cluster.controllers.items():
        remaining = max(deadline - time.monotonic(), 1.0)
        wait_until(controller.ready, controller.server, remaining, f"{name} readiness")


def start_full_cluster(
    layout: FullLayout,
    work_dir: Path,
    crd_files: Sequence[Path],
    gpu_nodes: int,
    complete_after_s: float,
) -> FullCluster:
    """Start the control plane with a scheduler, kwok and the four controllers; install
    `crd_files` besides the controllers' own CRDs; add `gpu_nodes` fake 8-GPU nodes."""
    started = time.monotonic()
    plane = start_control_plane(layout.cluster, work_dir, nodes=True)
    try:
        pki = make_webhook_pki(
            work_dir / "webhook-pki",
            [TRAINING_OPERATOR.ca_name, KUEUE.ca_name],
            [TRAINING_OPERATOR.dns_name, KUEUE.dns_name],
        )
        ports = _allocate_ports()
        ca_pem = pki.ca.cert.read_bytes()
        plane.install_crds(
            [*crd_files, *_crd_files(plane, layout, ports, ca_pem, work_dir / "crds")]
        )
    except BaseException:
        plane.stop()
        raise
    kwok = start_kwok(layout.kwok, plane.kubeconfig, work_dir)
    cluster = FullCluster(plane, layout, kwok, controllers={})
    with _stopping_on_error(cluster):
        _install_before_start(cluster, pki, ports, complete_after_s)
        for name, start in STARTERS.items():
            cluster.controllers[name] = start(layout, work_dir, plane.kubeconfig, pki, ports[name])
        cluster.add_gpu_nodes(gpu_nodes)
        _wait_ready(cluster, time.monotonic() + READY_TIMEOUT_S)
        runtime = layout.trainer_module / "manifests/base/runtimes/torch_distributed.yaml"
        cluster.apply(load_yaml(runtime))
        for probe in _dry_run_probes():
            cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
        cluster.started_in_s = time.monotonic() - started
    return cluster


@contextlib.contextmanager
def _stopping_on_error(cluster: FullCluster) -> Iterator[None]:
    try:
        yield
    except BaseException:
        cluster.stop()
        raise


@contextlib.contextmanager
def running_full_cluster(
    layout: FullLayout,
    work_dir: Path,
    crd_files: Sequence[Path] = (),
    gpu_nodes: int = 4,
    complete_after_s: float = 2.0,
) -> Iterator[FullCluster]:
    """A started full-mode cluster; every process stopped on exit."""
    cluster = start_full_cluster(layout, work_dir, crd_files, gpu_nodes, complete_after_s)
    try:
        yield cluster
    finally:
        cluster.stop()

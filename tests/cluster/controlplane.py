"""A real control plane on loopback: etcd, kube-apiserver (TLS, RBAC), kube-controller-manager."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import yaml

from .layout import ClusterLayout
from .pki import ClusterPki, make_cluster_pki
from .procs import Server, free_ports, start_ready_server

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT_S = 180.0
# The controllers the tests rely on: ownerReference garbage collection, batch Jobs, namespace
# deletion, ResourceQuota usage (quota admission refuses what it has no usage for), and
# ServiceAccounts with their tokens and the root CA ConfigMap.
CONTROLLERS = [
    "garbage-collector-controller",
    "job-controller",
    "namespace-controller",
    "resourcequota-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
]
# With nodes, as on a real cluster: the pod garbage collector marks the pods of a node that
# is gone (a spot reclaim) Failed with DisruptionTarget DeletionByPodGC and deletes them,
# 40 to 80 s after the Node object goes (a fixed quarantine, pkg/controller/podgc).
NODE_CONTROLLERS = ["pod-garbage-collector-controller"]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its command line and stderr."""


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str]) -> Path:
    """A one-context kubeconfig (JSON is valid kubeconfig YAML) for `user`'s credentials."""
    cluster = {"server": server, "certificate-authority": str(ca)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rloop-test", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "rloop-test", "context": {"cluster": "rloop-test", "user": "user"}}],
        "current-context": "rloop-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """A started control plane; `kubeconfig` is cluster-admin (group system:masters)."""

    layout: ClusterLayout
    work_dir: Path
    server_url: str
    pki: ClusterPki
    kubeconfig: Path
    servers: list[Server] = field(default_factory=list)

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises with stderr when it fails."""
        argv = [str(self.layout.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def api_client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
        """A client as the admin, or as the user of `kubeconfig`."""
        config_file = str(kubeconfig or self.kubeconfig)
        client = kubernetes.config.new_client_from_config(config_file=config_file)  # type: ignore[no-untyped-call]
        assert isinstance(client, kubernetes.client.ApiClient)
        return client

    def install_crds(self, crd_files: Sequence[Path], timeout_s: float = 60.0) -> None:
        """Server-side apply the CRDs in one kubectl call (the PyTorchJob one is too big for
        client-side apply) and wait until every one is Established."""
        for crd_file in crd_files:
            if not crd_file.is_file():
                raise FileNotFoundError(f"CRD file {crd_file} does not exist")
        if not crd_files:
            return
        names = {yaml.safe_load(crd_file.read_text())["metadata"]["name"] for crd_file in crd_files}
        files = [f"--filename={crd_file}" for crd_file in crd_files]
        self.kubectl("apply", "--server-side", "--force-conflicts", *files)
        # Not `kubectl wait`: it errors instead of waiting while status.conditions is unset.
        deadline = time.monotonic() + timeout_s
        while pending := sorted(names - self._established_crds()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not Established within {timeout_s:.0f}s: {pending}")
            time.sleep(0.2)

    def _established_crds(self) -> set[str]:
        listed = json.loads(self.kubectl("get", "crds", "-o", "json").stdout)["items"]
        return {
            crd["metadata"]["name"]
            for crd in listed
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions") or []
            )
        }

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path, duration: str = "12h"
    ) -> Path:
        """A kubeconfig holding a TokenRequest token of ServiceAccount `namespace/name`."""
        token = self.kubectl(
            "create", "token", name, f"--namespace={namespace}", f"--duration={duration}"
        ).stdout.strip()
        return write_kubeconfig(path, self.server_url, self.pki.ca.cert, {"token": token})

    def restart_apiserver(self, down_s: float) -> None:
        """Stop kube-apiserver, leave it down for `down_s` (clients get connection refused),
        then start it again on the same port with the same arguments, as a control-plane
        upgrade or a crashed apiserver's restart does; returns once it is ready."""
        [index] = [i for i, s in enumerate(self.servers) if s.name == "kube-apiserver"]
        stopped = self.servers[index]
        stopped.stop()
        time.sleep(down_s)
        ready = lambda: _https_ok(f"{self.server_url}/readyz", self.pki)  # noqa: E731
        argv = [str(arg) for arg in stopped.process.args]  # type: ignore[union-attr]  # a list
        self.servers[index] = start_ready_server(
            "kube-apiserver", argv, self.work_dir, ready, START_TIMEOUT_S
        )

    def stop(self) -> None:
        """Stop in reverse start order: controllers first, etcd last."""
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def _https_ok(url: str, pki: ClusterPki | None) -> bool:
    """GET `url` as the admin client with `pki`, or unverified and anonymous without it."""
    if pki is None:
        context = ssl._create_unverified_context()
    else:
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_etcd(layout: ClusterLayout, work_dir: Path, client_port: int, peer_port: int) -> Server:
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    argv = [
        str(layout.etcd),
        f"--data-dir={work_dir / 'etcd'}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--unsafe-no-fsync",  # test data is thrown away; fsync dominates etcd latency on CI disks
    ]  # fmt: skip
    ready = lambda: _http_ok(f"{client_url}/health")  # noqa: E731
    return start_ready_server("etcd", argv, work_dir, ready, START_TIMEOUT_S)


def _start_apiserver(
    layout: ClusterLayout,
    work_dir: Path,
    pki: ClusterPki,
    etcd_port: int,
    port: int,
) -> Server:
    argv = [
        str(layout.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={work_dir / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving.cert}", f"--tls-private-key-file={pki.serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        # As on real clusters: setting blockOwnerDeletion on a child's ownerReference needs
        # `update` on the owner's finalizers.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--allow-privileged=true",
        # The default reconciler refuses a loopback advertise address; there are no Services.
        "--endpoint-reconciler-type=none",
    ]  # fmt: skip
    ready = lambda: _https_ok(f"https://127.0.0.1:{port}/readyz", pki)  # noqa: E731
    return start_ready_server("kube-apiserver", argv, work_dir, ready, START_TIMEOUT_S)


def _start_controller_manager(
    layout: ClusterLayout,
    work_dir: Path,
    pki: ClusterPki,
    kubeconfig: Path,
    port: int,
    controllers: Sequence[str],
) -> Server:
    argv = [
        str(layout.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={work_dir / 'controller-manager-certs'}",
        "--leader-elect=false",
        f"--controllers={','.join(controllers)}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]  # fmt: skip
    # Its /healthz needs no client certificate; its serving cert is self-signed.
    ready = lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", None)  # noqa: E731
    return start_ready_server("kube-controller-manager", argv, work_dir, ready, START_TIMEOUT_S)


def _start_scheduler(layout: ClusterLayout, work_dir: Path, kubeconfig: Path, port: int) -> Server:
    argv = [
        str(layout.kube_scheduler),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={work_dir / 'scheduler-certs'}",
        "--leader-elect=false",
    ]  # fmt: skip
    ready = lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", None)  # noqa: E731
    return start_ready_server("kube-scheduler", argv, work_dir, ready, START_TIMEOUT_S)


def _wait_for_default_service_account(plane: ControlPlane) -> None:
    # Pods (and so Jobs) are refused in a namespace until its "default" ServiceAccount exists.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(KubectlError):
            plane.kubectl("get", "serviceaccount", "default", "--namespace=default")
            return
        time.sleep(0.5)
    raise TimeoutError("ServiceAccount default/default was not created by the controller manager")


def start_control_plane(
    layout: ClusterLayout,
    work_dir: Path,
    nodes: bool = False,
) -> ControlPlane:
    """Start etcd, kube-apiserver, kube-controller-manager and, for a cluster with `nodes`,
    kube-scheduler and the NODE_CONTROLLERS (the fast mode has no nodes to bind pods to);
    stop all of them on failure."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pki = make_cluster_pki(work_dir / "pki", SERVICE_IP)
    etcd_port, peer_port, api_port, manager_port, scheduler_port = free_ports(5)
    server_url = f"https://127.0.0.1:{api_port}"
    admin_user = {"client-certificate": str(pki.admin.cert), "client-key": str(pki.admin.key)}
    kubeconfig = write_kubeconfig(
        work_dir / "admin.kubeconfig", server_url, pki.ca.cert, admin_user
    )
    plane = ControlPlane(layout, work_dir, server_url, pki, kubeconfig)
    try:
        plane.servers.append(_start_etcd(layout, work_dir, etcd_port, peer_port))
        plane.servers.append(_start_apiserver(layout, work_dir, pki, etcd_port, api_port))
        controllers = [*CONTROLLERS, *(NODE_CONTROLLERS if nodes else ())]
        plane.servers.append(
            _start_controller_manager(layout, work_dir, pki, kubeconfig, manager_port, controllers)
        )
        if nodes:
            plane.servers.append(_start_scheduler(layout, work_dir, kubeconfig, scheduler_port))
        _wait_for_default_service_account(plane)
    except BaseException:
        plane.stop()
        raise
    return plane


@contextlib.contextmanager
def running_control_plane(
    layout: ClusterLayout, work_dir: Path, crd_files: Sequence[Path] = ()
) -> Iterator[ControlPlane]:
    """A started control plane with `crd_files` Established; everything stopped on exit."""
    plane = start_control_plane(layout, work_dir)
    try:
        plane.install_crds(crd_files)
        yield plane
    finally:
        plane.stop()

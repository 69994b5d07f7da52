"""The real workload controllers run out of cluster: the Kubeflow training operator, the
Kubeflow Trainer, JobSet and Kueue, each on loopback ports of its own.

Every controller-runtime manager serves its webhooks with the certificate files in its
`CertDir` (default `$TMPDIR/k8s-webhook-server/serving-certs`), so each process gets a
TMPDIR or a certDir of its own holding the test's webhook certificate. Where the controller
insists on running its cert rotator (training operator, Kueue), the rotator finds a Secret
the test made with the same certificate, valid for longer than its 90-day lookahead, and
keeps it (see `pki.make_webhook_pki`).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import FullLayout
from .pki import WebhookPki
from .procs import Server, start_server

# The training operator's cert rotator waits for tls.crt in this fixed directory
# (pkg/cert/cert.go, certDir); it only checks that the file exists.
TRAINING_OPERATOR_ROTATOR_DIR = Path("/tmp/k8s-webhook-server/serving-certs")


@dataclass(frozen=True)
class RotatedWebhook:
    """Where a controller's cert rotator keeps its certs and what it checks them for."""

    namespace: str
    service: str
    secret: str
    ca_name: str

    @property
    def dns_name(self) -> str:
        return f"{self.service}.{self.namespace}.svc"


TRAINING_OPERATOR = RotatedWebhook(
    "kubeflow", "training-operator", "training-operator-webhook-cert", "training-operator-ca"
)
KUEUE = RotatedWebhook(
    "kueue-system", "kueue-webhook-service", "kueue-webhook-server-cert", "kueue-ca"
)
KUEUE_FRAMEWORKS = [
    "batch/job",
    "kubeflow.org/pytorchjob",
    "trainer.kubeflow.org/trainjob",
    "jobset.x-k8s.io/jobset",
]


@dataclass(frozen=True)
class Controller:
    """A started controller-runtime manager and the loopback port of its health probes."""

    server: Server
    health_port: int

    def ready(self) -> bool:
        """Its readyz check passes: certificates in place and the webhook server started."""
        return _http_ok(f"http://127.0.0.1:{self.health_port}/readyz")


def rotator_secret(rotated: RotatedWebhook, pki: WebhookPki) -> dict[str, Any]:
    """The Secret a cert rotator reads its CA and serving cert from (cert-controller keys)."""
    files = {"ca.crt": pki.ca.cert, "ca.key": pki.ca.key,
             "tls.crt": pki.serving.cert, "tls.key": pki.serving.key}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": rotated.secret, "namespace": rotated.namespace},
        "stringData": {key: path.read_text() for key, path in files.items()},
    }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _cert_dir(directory: Path, pki: WebhookPki) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.serving.cert, directory / "tls.crt")
    shutil.copy(pki.serving.key, directory / "tls.key")
    return directory


def _process_dir(work_dir: Path, name: str) -> Path:
    home = work_dir / name
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return home


def _env(home: Path, kubeconfig: Path) -> dict[str, str]:
    return {"HOME": str(home), "TMPDIR": str(home / "tmp"), "KUBECONFIG": str(kubeconfig),
            "PATH": "/usr/bin:/bin"}  # fmt: skip


def _write_config(home: Path, config: dict[str, Any]) -> Path:
    path = home / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def start_training_operator(
    layout: FullLayout, work_dir: Path, kubeconfig: Path, pki: WebhookPki, ports: list[int]
) -> Controller:
    """training-operator.v1 for PyTorchJobs; `ports`: webhook, health probe."""
    webhook_port, health_port = ports
    home = _process_dir(work_dir, "training-operator")
    _cert_dir(home / "tmp" / "k8s-webhook-server" / "serving-certs", pki)
    if not (TRAINING_OPERATOR_ROTATOR_DIR / "tls.crt").exists():
        _cert_dir(TRAINING_OPERATOR_ROTATOR_DIR, pki)
    argv = [
        str(layout.training_operator),
        "-enable-scheme=pytorchjob",
        f"-webhook-server-port={webhook_port}",
        f"-webhook-service-name={TRAINING_OPERATOR.service}",
        f"-webhook-secret-name={TRAINING_OPERATOR.secret}",
        "-metrics-bind-address=0",
        f"-health-probe-bind-address=127.0.0.1:{health_port}",
    ]
    env = _env(home, kubeconfig) | {"MY_POD_NAMESPACE": TRAINING_OPERATOR.namespace}
    server = start_server("training-operator", argv, work_dir, env=env)
    return Controller(server, health_port)


def _manager_settings(webhook_port: int, health_port: int) -> dict[str, Any]:
    return {
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"port": webhook_port, "host": "127.0.0.1"},
        "leaderElection": {"leaderElect": False},
    }


def start_trainer(
    layout: FullLayout, work_dir: Path, kubeconfig: Path, pki: WebhookPki, ports: list[int]
) -> Controller:
    """Kubeflow Trainer's controller manager; `ports`: webhook, health probe."""
    webhook_port, health_port = ports
    home = _process_dir(work_dir, "trainer")
    _cert_dir(home / "tmp" / "k8s-webhook-server" / "serving-certs", pki)
    config = {
        "apiVersion": "config.trainer.kubeflow.org/v1alpha1",
        "kind": "Configuration",
        **_manager_settings(webhook_port, health_port),
        "certManagement": {"enable": False},
    }
    argv = [str(layout.trainer), f"--config={_write_config(home, config)}"]
    server = start_server("trainer", argv, work_dir, env=_env(home, kubeconfig))
    return Controller(server, health_port)


def start_jobset(
    layout: FullLayout, work_dir: Path, kubeconfig: Path, pki: WebhookPki, ports: list[int]
) -> Controller:
    """The JobSet controller; `ports`: webhook, health probe."""
    webhook_port, health_port = ports
    home = _process_dir(work_dir, "jobset")
    settings = _manager_settings(webhook_port, health_port)
    settings["webhook"]["certDir"] = str(_cert_dir(home / "certs", pki))
    config = {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        **settings,
        "internalCertManagement": {"enable": False},
    }
    argv = [str(layout.jobset), f"--config={_write_config(home, config)}"]
    server = start_server("jobset", argv, work_dir, env=_env(home, kubeconfig))
    return Controller(server, health_port)


def start_kueue(
    layout: FullLayout, work_dir: Path, kubeconfig: Path, pki: WebhookPki, ports: list[int]
) -> Controller:
    """Kueue managing only jobs labelled with a queue name; `ports`: webhook, health probe.

    Its internal cert management stays on: without it Kueue insists on metrics certificates
    in the fixed /etc/kueue/metrics/certs (cmd/kueue/main.go).
    """
    webhook_port, health_port = ports
    home = _process_dir(work_dir, "kueue")
    settings = _manager_settings(webhook_port, health_port)
    settings["webhook"]["certDir"] = str(_cert_dir(home / "certs", pki))
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE.namespace,
        **settings,
        "internalCertManagement": {
            "enable": True,
            "webhookServiceName": KUEUE.service,
            "webhookSecretName": KUEUE.secret,
        },
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": KUEUE_FRAMEWORKS},
        # The on-demand visibility API server would want its own port and an aggregator.
        "featureGates": {"VisibilityOnDemand": False},
    }
    argv = [str(layout.kueue), f"--config={_write_config(home, config)}"]
    server = start_server("kueue", argv, work_dir, env=_env(home, kubeconfig))
    return Controller(server, health_port)

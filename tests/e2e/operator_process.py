"""The operator as a separate process, with the credentials of the chart's ServiceAccount."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.cluster.controlplane import ControlPlane
from tests.cluster.procs import die_with_parent, free_port
from tests.e2e.helpers import eventually

START_TIMEOUT_S = 90.0
RBAC_DENIAL = re.compile(r'User "[^"]+" cannot [a-z]+ resource "[^"]+"')
ROOT = Path(__file__).resolve().parents[2]
RELEASE = "rloop-operator"
RELEASE_NAMESPACE = "rloop-system"


class OperatorProcess:
    """`env` adds to (or overrides) the operator's environment, e.g. a Lease to elect on."""

    def __init__(self, kubeconfig: Path, log_file: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_file = log_file
        self.extra_env = env or {}
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "RLOOP_METRICS_PORT": str(self.metrics_port),
            "RLOOP_RETRY_BACKOFF_SECONDS": "1",
            **self.extra_env,
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = [
            sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
            "-m", "rloop_operator.handlers",
        ]  # fmt: skip
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,  # a killed test or bench leaves no stray operator
        )  # fmt: skip
        self.starts += 1
        eventually(self._healthy, START_TIMEOUT_S, "the operator's liveness endpoint")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"operator exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        return self.health() == 200

    def health(self) -> int | None:
        """The HTTP status of /healthz; None if it does not answer."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=5
            ) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as answer:
            return str(answer.read().decode())

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""


def helm_binary() -> str:
    return subprocess.run(
        [str(ROOT / "hack" / "helm.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()


def install_chart(plane: ControlPlane, work_dir: Path) -> Path:
    """`helm install` the chart; a kubeconfig with its ServiceAccount's token."""
    installed = subprocess.run(
        [
            helm_binary(), "install", RELEASE, str(ROOT / "helm" / "rloop-operator"),
            "--namespace", RELEASE_NAMESPACE, "--create-namespace",
            "--kubeconfig", str(plane.kubeconfig),
        ],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert installed.returncode == 0, f"helm install failed: {installed.stderr}"
    return plane.service_account_kubeconfig(RELEASE_NAMESPACE, RELEASE, work_dir / "kubeconfig")


@contextlib.contextmanager
def running_operator(
    kubeconfig: Path, work_dir: Path, env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kubeconfig, work_dir / "operator.log", env)
    process.start()
    yield process
    process.stop()
    # A permission the chart lacks shows up in the operator's log as the API server's
    # RBAC denial (quota and admission refusals are Forbidden too, but say why).
    denials = RBAC_DENIAL.findall(process.log_tail(10**8))
    assert not denials, f"the operator hit RBAC denials: {denials}\n{process.log_tail()}"

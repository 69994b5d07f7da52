"""`make cluster-up` / `make cluster-down`: the test control plane by hand, in the background.

python -m tests.cluster.devcluster up          start it, print the kubeconfig path
python -m tests.cluster.devcluster up --full   the full mode: scheduler, fake GPU nodes and
                                               the real controllers (`make cluster-up FULL=1`)
python -m tests.cluster.devcluster down        stop it
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .controlplane import ControlPlane, running_control_plane
from .fullstart import running_full_cluster
from .layout import REPO_ROOT, cluster_layout, ensure_binaries, ensure_full_binaries
from .procs import STOP_GRACE_S

UP_TIMEOUT_S = 300.0


def state_dir() -> Path:
    return cluster_layout().cache_dir / "devcluster"


def project_crds(pytorchjob: bool = True) -> list[Path]:
    """The CRDs every control plane gets: Kubeflow's PyTorchJob (unless `pytorchjob` is
    False, as on a cluster with only Kubeflow Trainer v2), Trainer v2's TrainJob and
    runtimes, then ours from crds/."""
    layout = cluster_layout()
    kubeflow = [layout.pytorchjob_crd] if pytorchjob else []
    return [*kubeflow, *layout.trainer_crds, *sorted((REPO_ROOT / "crds").glob("*.yaml"))]


def install_project_objects(plane: ControlPlane) -> None:
    """What a Kubeflow Trainer install brings besides CRDs: the torch runtime."""
    plane.kubectl("apply", "--server-side", "-f", str(plane.layout.torch_runtime))


def _running_pid(pid_file: Path) -> int | None:
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def serve(state: Path, full: bool) -> None:
    """Run the control plane (or the full mode) in this process until SIGTERM; then stop it."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    work_dir = state / "cluster"
    if full:
        with running_full_cluster(ensure_full_binaries(), work_dir, project_crds()) as cluster:
            (state / "kubeconfig-path").write_text(str(cluster.kubeconfig))
            stopped.wait()
        return
    with running_control_plane(ensure_binaries(), work_dir, project_crds()) as plane:
        install_project_objects(plane)
        (state / "kubeconfig-path").write_text(str(plane.kubeconfig))
        stopped.wait()


def up(full: bool) -> int:
    state = state_dir()
    pid_file = state / "pid"
    if (pid := _running_pid(pid_file)) is not None:
        print(f"already running (pid {pid}); kubeconfig: {(state / 'kubeconfig-path').read_text()}")
        return 0
    ensure_full_binaries() if full else ensure_binaries()
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    with (state / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.devcluster", "serve", str(state)]
            + (["--full"] if full else []),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + UP_TIMEOUT_S
    while not (state / "kubeconfig-path").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            print(f"control plane did not start; see {state / 'serve.log'} and {state / 'cluster'}")
            return 1
        time.sleep(0.5)
    kubeconfig = (state / "kubeconfig-path").read_text()
    mode = "full cluster" if full else "control plane"
    print(f"{mode} up (pid {process.pid}); kubeconfig: {kubeconfig}")
    print(f"  export KUBECONFIG={kubeconfig}")
    return 0


def down() -> int:
    pid_file = state_dir() / "pid"
    pid = _running_pid(pid_file)
    if pid is None:
        print("no control plane running")
        return 0
    os.kill(pid, signal.SIGTERM)
    # serve() stops each server with its own grace period, etcd last.
    deadline = time.monotonic() + 4 * STOP_GRACE_S
    while _running_pid(pid_file) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if _running_pid(pid_file) is not None:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink()
    print(f"control plane stopped (pid {pid})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.devcluster")
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("state", nargs="?", type=Path, help="serve only: its state directory")
    parser.add_argument("--full", action="store_true", help="the full mode (up and serve)")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.state, args.full)
        return 0
    return up(args.full) if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())

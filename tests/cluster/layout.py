"""Where the pinned control-plane binaries live; hack/cluster/versions.sh is the one source."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK_DIR = REPO_ROOT / "hack" / "cluster"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class ClusterLayout:
    k8s_version: str
    k8s_bin: Path
    cache_dir: Path
    pytorchjob_crd: Path
    trainer_module: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.k8s_bin / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.k8s_bin / "kube-controller-manager"

    @property
    def trainer_crds(self) -> list[Path]:
        """TrainJob, ClusterTrainingRuntime and TrainingRuntime (Kubeflow Trainer v2)."""
        crds = self.trainer_module / "manifests" / "base" / "crds"
        kinds = ("trainjobs", "clustertrainingruntimes", "trainingruntimes")
        return [crds / f"trainer.kubeflow.org_{kind}.yaml" for kind in kinds]

    @property
    def torch_runtime(self) -> Path:
        """ClusterTrainingRuntime torch-distributed, as Kubeflow Trainer ships it."""
        return self.trainer_module / "manifests" / "base" / "runtimes" / "torch_distributed.yaml"

    @property
    def etcd(self) -> Path:
        return VENV_BIN / "etcd"

    @property
    def kubectl(self) -> Path:
        return VENV_BIN / "kubectl"

    def missing(self) -> list[Path]:
        wanted = [self.kube_apiserver, self.kube_controller_manager, self.etcd, self.kubectl]
        files = [self.pytorchjob_crd, *self.trainer_crds, self.torch_runtime]
        return [path for path in [*wanted, *files] if not path.exists()]


def cluster_layout() -> ClusterLayout:
    """Read the pinned versions and cache paths from hack/cluster/versions.sh."""
    names = [
        "K8S_VERSION",
        "RLOOP_K8S_BIN",
        "RLOOP_CACHE",
        "RLOOP_PYTORCHJOB_CRD",
        "RLOOP_TRAINER_MODULE",
    ]
    script = f"source {HACK_DIR / 'versions.sh'}; " + "; ".join(f'echo "${n}"' for n in names)
    values = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    version, k8s_bin, cache_dir, crd, trainer = values
    return ClusterLayout(
        k8s_version=version,
        k8s_bin=Path(k8s_bin),
        cache_dir=Path(cache_dir),
        pytorchjob_crd=Path(crd),
        trainer_module=Path(trainer),
    )


def ensure_binaries() -> ClusterLayout:
    """Build or fetch whatever is missing (hack/cluster/build-bins.sh), printing its timings."""
    layout = cluster_layout()
    if layout.missing():
        started = time.monotonic()
        print(f"building control-plane binaries: missing {[str(p) for p in layout.missing()]}")
        subprocess.run([str(HACK_DIR / "build-bins.sh")], check=True)
        print(f"control-plane binaries ready in {time.monotonic() - started:.0f}s")
    return layout

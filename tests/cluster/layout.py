"""Where the pinned binaries and modules live; hack/cluster/versions.sh is the one source."""

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
    trainer_oldest_module: Path  # the oldest supported Trainer: its CRDs only
    etcd: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.k8s_bin / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.k8s_bin / "kube-controller-manager"

    @property
    def kube_scheduler(self) -> Path:
        return self.k8s_bin / "kube-scheduler"

    @property
    def trainer_crds(self) -> list[Path]:
        """TrainJob, ClusterTrainingRuntime and TrainingRuntime (Kubeflow Trainer v2)."""
        return _trainer_crds(self.trainer_module)

    @property
    def trainer_oldest_crds(self) -> list[Path]:
        """The same CRDs of the oldest Trainer the operator supports."""
        return _trainer_crds(self.trainer_oldest_module)

    @property
    def torch_runtime(self) -> Path:
        """ClusterTrainingRuntime torch-distributed, as Kubeflow Trainer ships it."""
        return self.trainer_module / "manifests" / "base" / "runtimes" / "torch_distributed.yaml"

    @property
    def kubectl(self) -> Path:
        return VENV_BIN / "kubectl"

    def missing(self) -> list[Path]:
        wanted = [self.kube_apiserver, self.kube_controller_manager, self.etcd, self.kubectl]
        files = [self.pytorchjob_crd, *self.trainer_crds, *self.trainer_oldest_crds]
        files.append(self.torch_runtime)
        return [path for path in [*wanted, *files] if not path.exists()]


@dataclass(frozen=True)
class FullLayout:
    """What the full mode runs besides the control plane: binaries and their Go modules,
    whose manifests (CRDs, webhooks, runtimes) are installed from the module sources."""

    cluster: ClusterLayout
    kwok: Path
    training_operator: Path
    trainer: Path
    jobset: Path
    kueue: Path
    kwok_module: Path
    training_operator_module: Path
    trainer_module: Path
    jobset_module: Path
    kueue_module: Path

    def missing(self) -> list[Path]:
        binaries = [self.cluster.kube_scheduler, self.kwok, self.training_operator, self.trainer]
        modules = [self.kwok_module, self.trainer_module, self.jobset_module, self.kueue_module]
        wanted = [*binaries, self.jobset, self.kueue, *modules]
        return [*self.cluster.missing(), *(path for path in wanted if not path.exists())]


def _trainer_crds(module: Path) -> list[Path]:
    crds = module / "manifests" / "base" / "crds"
    kinds = ("trainjobs", "clustertrainingruntimes", "trainingruntimes")
    return [crds / f"trainer.kubeflow.org_{kind}.yaml" for kind in kinds]


def _versions(*names: str) -> list[str]:
    script = f"source {HACK_DIR / 'versions.sh'}; " + "; ".join(f'echo "${n}"' for n in names)
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()


def cluster_layout() -> ClusterLayout:
    """Read the pinned versions and cache paths from hack/cluster/versions.sh."""
    values = _versions(
        "K8S_VERSION",
        "RLOOP_K8S_BIN",
        "RLOOP_CACHE",
        "RLOOP_PYTORCHJOB_CRD",
        "RLOOP_TRAINER_MODULE",
        "RLOOP_TRAINER_OLDEST_MODULE",
        "RLOOP_ETCD_BIN",
    )
    version, k8s_bin, cache_dir, crd, trainer, trainer_oldest, etcd = values
    return ClusterLayout(
        k8s_version=version,
        k8s_bin=Path(k8s_bin),
        cache_dir=Path(cache_dir),
        pytorchjob_crd=Path(crd),
        trainer_module=Path(trainer),
        trainer_oldest_module=Path(trainer_oldest),
        etcd=Path(etcd),
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


def full_layout() -> FullLayout:
    """The full mode's binaries and modules, as hack/cluster/versions.sh places them."""
    names = ["KWOK", "TRAINING_OPERATOR", "TRAINER", "JOBSET", "KUEUE"]
    values = [Path(v) for v in _versions(*(f"RLOOP_{n}_BIN" for n in names))]
    modules = [Path(v) for v in _versions(*(f"RLOOP_{n}_MODULE" for n in names))]
    kwok, training_operator, trainer, jobset, kueue = values
    kwok_module, training_operator_module, trainer_module, jobset_module, kueue_module = modules
    return FullLayout(
        cluster=cluster_layout(),
        kwok=kwok, training_operator=training_operator, trainer=trainer, jobset=jobset,
        kueue=kueue, kwok_module=kwok_module, training_operator_module=training_operator_module,
        trainer_module=trainer_module, jobset_module=jobset_module, kueue_module=kueue_module,
    )  # fmt: skip


def ensure_full_binaries() -> FullLayout:
    """`build-bins.sh --full` when anything of the full mode is missing, printing its timings."""
    layout = full_layout()
    if layout.missing():
        started = time.monotonic()
        print(f"building the full mode: missing {[str(p) for p in layout.missing()]}")
        subprocess.run([str(HACK_DIR / "build-bins.sh"), "--full"], check=True)
        print(f"full-mode binaries ready in {time.monotonic() - started:.0f}s")
    return layout

# Pinned versions and cache paths of the test control plane; sourced by the scripts here.
# tests/cluster/paths.py reads the same layout: change both together.
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
K8S_MAJOR="$(echo "${K8S_VERSION#v}" | cut -d. -f1)"
K8S_MINOR="$(echo "${K8S_VERSION#v}" | cut -d. -f2)"
K8S_STAGING_VERSION="v0.${K8S_MINOR}.$(echo "$K8S_VERSION" | cut -d. -f3)"
TRAINING_OPERATOR_VERSION="v1.9.4"
# Kubeflow Trainer v2: the TrainJob and runtime CRDs and the torch runtime come from its module.
TRAINER_VERSION="v2.2.1"

RLOOP_CACHE="${RLOOP_CACHE:-$HOME/.cache/rloop}"
RLOOP_K8S_DIR="$RLOOP_CACHE/kubernetes/$K8S_VERSION"
RLOOP_K8S_BIN="$RLOOP_K8S_DIR/bin"
RLOOP_GOCACHE="$RLOOP_K8S_DIR/gocache"
RLOOP_GOMODCACHE="$RLOOP_CACHE/gomod"
RLOOP_PYTORCHJOB_CRD="$RLOOP_GOMODCACHE/github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION/manifests/base/crds/kubeflow.org_pytorchjobs.yaml"
RLOOP_TRAINER_MODULE="$RLOOP_GOMODCACHE/github.com/kubeflow/trainer/v2@$TRAINER_VERSION"
RLOOP_VENV_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin"

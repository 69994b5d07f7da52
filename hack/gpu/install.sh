#!/usr/bin/env bash
# On the GPU machine: keeps stage N (carried as .gpu/N and .whl/N) in /tmp/stage,
# and once every vLLM part is there installs vLLM and the wheels into /tmp/site.
# Usage, in each carrying call: hack/gpu/install.sh N && export PYTHONPATH=/tmp/site
set -euo pipefail
stage=/tmp/stage site=/tmp/site
mkdir -p "$stage"
[ -n "${1:-}" ] && cp ".gpu/$1"/* ".whl/$1"/* "$stage/"
[ -f "$site/.installed" ] && exit 0
parts=("$stage"/vllm-0.25.1.tar.xz.part*)
total=${parts[0]##*of}
if [ "${#parts[@]}" -lt "$total" ]; then
  echo "have ${#parts[@]} of $total vLLM parts; carry the next stage"
  exit 0
fi
mkdir -p "$site"
cat $(printf '%s\n' "${parts[@]}" | sort) | xz -d | tar -x -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" "$stage"/*.whl
touch "$site/.installed"
echo "installed into $site: vllm 0.25.1 and $(ls "$stage"/*.whl | wc -l) wheels"

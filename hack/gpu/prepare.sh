#!/usr/bin/env bash
# Prepares, on a machine with PyPI access, everything a bare GPU machine with no
# network needs to run bench/gpu.py: vLLM 0.25.1 shrunk and split into parts
# (.gpu/N/), the wheels of hack/gpu/wheels.txt plus a DeepSpeed wheel built here
# (.whl/N/). Stage N fits one device call (64 MiB with the working tree), and
# hack/gpu/install.sh N on the device machine gathers and installs them.
# Usage: hack/gpu/prepare.sh   (from the repository root; re-runnable)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=.venv/bin/python
WORK=${RLOOP_GPU_PREP:-/tmp/rloop-gpu-prep}
STAGES=3
STAGE_BUDGET=$((60 * 1024 * 1024))  # leaves room for the working tree in a 64 MiB call
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 \
  manylinux_2_5 manylinux1 manylinux_2_31; do PLATFORMS+=(--platform "${p}_x86_64"); done
download() { "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" "$@"; }

mkdir -p "$WORK/vllm" "$WORK/deepspeed"
download -d "$WORK/vllm" vllm==0.25.1
grep -vE '^\s*(#|$)' hack/gpu/wheels.txt > "$WORK/requirements.txt"
rm -rf "$WORK/wheels"  # exactly the listed versions, nothing left from an earlier list
download -d "$WORK/wheels" -r "$WORK/requirements.txt"
# DeepSpeed is an sdist whose build imports torch: build it here, once, so the
# GPU side installs a plain wheel (its CUDA ops are JIT-built there if used).
ls "$WORK"/deepspeed/deepspeed-0.19.8-*.whl >/dev/null 2>&1 ||
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/deepspeed" deepspeed==0.19.8
cp "$WORK"/deepspeed/deepspeed-0.19.8-*.whl "$WORK/wheels/"

# FlashAttention-2 (190 MB; an H100 runs FA3) and the Rust frontend (38 MB) are
# left out: 627 MB unpacked becomes ~114 MB as tar.xz.
archive="$WORK/vllm-0.25.1.tar.xz"
if [ ! -s "$archive" ]; then
  rm -rf "$WORK/vllm/unpacked" && mkdir "$WORK/vllm/unpacked"
  unzip -q "$WORK"/vllm/vllm-0.25.1-*.whl -d "$WORK/vllm/unpacked"
  rm "$WORK/vllm/unpacked/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$WORK/vllm/unpacked/vllm/vllm-rs"
  tar -C "$WORK/vllm/unpacked" -cf - vllm vllm-0.25.1.dist-info | xz -6 -T2 > "$archive.tmp"
  mv "$archive.tmp" "$archive"
fi

rm -rf .gpu .whl
for n in $(seq 1 $STAGES); do mkdir -p ".gpu/$n" ".whl/$n"; done
split -n "$STAGES" -d -a 1 "$archive" "$WORK/part."
for n in $(seq 1 $STAGES); do mv "$WORK/part.$((n - 1))" ".gpu/$n/vllm-0.25.1.tar.xz.part${n}of${STAGES}"; done
# Largest wheel first into the stage with the most room left.
"$PY" - "$WORK/wheels" "$STAGES" "$STAGE_BUDGET" <<'PY'
import shutil, sys
from pathlib import Path
wheels, stages, budget = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
used = {n: sum(f.stat().st_size for f in Path(f".gpu/{n}").iterdir()) for n in range(1, stages + 1)}
for wheel in sorted(wheels.glob("*.whl"), key=lambda f: -f.stat().st_size):
    n = min(used, key=lambda k: used[k])
    used[n] += wheel.stat().st_size
    if used[n] > budget:
        sys.exit(f"stage {n} is over {budget} bytes with {wheel.name}: raise STAGES in prepare.sh")
    shutil.copy(wheel, f".whl/{n}/")
for n, size in used.items():
    print(f"stage {n}: {size / 2**20:.1f} MiB")
PY
cp /work/shared/gpu/vllm_probe.py .gpu/ 2>/dev/null || true

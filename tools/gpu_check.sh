#!/usr/bin/env bash
# The one prepared script for a machine with a real GPU: everything a session lent the GPU
# machine (or a user on a new GPU) should measure, into one results file.
#
#   1. the adapters (`darts-minus devices`) and `nvidia-smi -L` where present;
#   2. `darts-minus check`: every op and the PyTorch fixtures on this adapter, then the same
#      under WebGPU's limits (`--limits webgpu`);
#   3. `darts-minus bench` at the paper's search network (C=16, 8 cells) over batches 16…256,
#      and with `--strategy gpu` at batch 64 (dispatches per step, peak memory);
#   4. NAS-Bench-201's search network at batches 16 and 64;
#   5. tools/bench_torch.py (PyTorch on CUDA where it sees a GPU) against the same binary at
#      batch 64, both spaces: the paired ratio docs/performance.md asks for.
#
# Usage: tools/gpu_check.sh [BINARY] [RESULTS]
#   BINARY   a release build (default target/release/darts-minus); build it where the CPU
#            matches (x86-64) and carry it: `cargo build --release`
#   RESULTS  default $OUT/gpu_check.txt when $OUT is set, else gpu_check.txt
# On the device machine the Vulkan loader may be missing: carry the loader packages in .gl/
# (see the device tool's README); this script unpacks them when they are there.
# Every step has its own time limit, so a hung driver costs one step, not the run; together
# they stay under 9 minutes (the device tool's 10-minute command limit).
# GPU_CHECK_QUICK=1 runs the same steps at tiny sizes, to try the script on a CPU adapter.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/darts-minus}
RES=${2:-${OUT:-.}/gpu_check.txt}
mkdir -p "$(dirname "$RES")"
: >"$RES"

if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$nvidia_icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
  export VK_DRIVER_FILES=$nvidia_icd
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

# step NAME SECONDS COMMAND...: the command's output under a header, with its exit status and
# wall time, into the results file (and the terminal).
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  {
    echo
    echo "=== $name"
    echo "\$ $*"
  } | tee -a "$RES"
  timeout "$limit" "$@" 2>&1 | tee -a "$RES"
  local rc=${PIPESTATUS[0]}
  echo "--- $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$RES"
}

{
  echo "darts-minus GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "binary: $BIN ($("$BIN" --version 2>&1))"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -srm), $(nproc) CPUs"
} | tee -a "$RES"

# The paper's search network (C=16, 8 cells) and NAS-Bench-201's (C=16, 5 cells per stage).
C=16 L=8 N=5 BATCHES=16,32,64,128,256 B=64 NB_BATCHES=16,64 STEPS=(--steps 5 --warmup 2)
if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then
  C=2 L=3 N=1 BATCHES=2,4 B=2 NB_BATCHES=2 STEPS=(--steps 1 --warmup 1)
fi
NET=(--channels "$C" --layers "$L")
if command -v nvidia-smi >/dev/null; then
  step "nvidia-smi" 20 nvidia-smi -L
fi
step "devices" 30 "$BIN" devices
step "check" 90 "$BIN" check
step "check under WebGPU's limits" 45 "$BIN" --limits webgpu check --only conv2d
step "bench: DARTS network, batches $BATCHES" 120 \
  "$BIN" bench "${NET[@]}" --batch "$BATCHES" "${STEPS[@]}" --json
step "bench: DARTS network, GPU strategy" 45 \
  "$BIN" bench "${NET[@]}" --batch "$B" --strategy gpu "${STEPS[@]}" --json
step "bench: NAS-Bench-201 network" 60 \
  "$BIN" bench --space nb201 --channels "$C" --cells-per-stage "$N" --batch "$NB_BATCHES" \
  "${STEPS[@]}" --json
if python3 -c 'import torch' 2>/dev/null; then
  step "PyTorch vs darts-minus, DARTS space, batch $B" 80 \
    python3 tools/bench_torch.py --darts-minus "$BIN" "${NET[@]}" --batch "$B" "${STEPS[@]}"
  step "PyTorch vs darts-minus, NAS-Bench-201, batch $B" 50 \
    python3 tools/bench_torch.py --space nb201 --darts-minus "$BIN" --channels "$C" \
    --cells-per-stage "$N" --batch "$B" "${STEPS[@]}"
else
  echo "(no PyTorch here: the paired comparison is skipped)" | tee -a "$RES"
fi
echo "results: $RES"

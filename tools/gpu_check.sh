#!/usr/bin/env bash
# The one prepared script for a machine with a real GPU: everything a session lent the GPU
# machine (or a user on a new GPU) should measure, into one results file, most valuable first:
#
#   1. the adapters (`darts-minus devices`) and `nvidia-smi -L` where present;
#   2. `darts-minus check`: every op and the PyTorch fixtures on this adapter;
#   3. tools/bench_torch.py (PyTorch on CUDA where it sees a GPU) against the same binary, back
#      to back, over batches 16…256 in the DARTS space (the paper's search network, C=16,
#      8 cells) and 16…256 in NAS-Bench-201's (C=16, 5 cells a stage): the paired ratios
#      docs/performance.md asks for, one JSON line each (peak memory, first step, dispatches
#      too) in pairs_darts.jsonl / pairs_nb201.jsonl beside the results, which
#      `darts-minus bench --chart OUT.svg --pairs FILE` draws;
#   4. `bench --profile` at batches 64 and 256 in both spaces: every kernel's launches and
#      GPU time (timestamp queries), and the CPU time a step spends encoding its commands;
#   5. a launch-policy sweep (tools/policy_sweep.py: a few thresholds against the defaults,
#      policy_sweep.jsonl beside the results); intermediates kept rather than recomputed, and
#      the CPU launch strategy, on this GPU at batch 64 (to check `auto`'s choices);
#   6. `check` again under WebGPU's limits (`--limits webgpu`).
#
# Usage: tools/gpu_check.sh [BINARY] [RESULTS]
#   BINARY   a release build (default target/release/darts-minus); build it where the CPU
#            matches (x86-64) and carry it: `cargo build --release`
#   RESULTS  default $OUT/gpu_check.txt when $OUT is set, else gpu_check.txt
# On the device machine the Vulkan loader may be missing: carry the loader packages in .gl/
# (see the device tool's README); this script unpacks them when they are there.
# Every step has its own time limit, and the whole run a deadline (GPU_CHECK_DEADLINE seconds,
# default 480) that shortens or skips the later steps, so a hung driver or a slow kernel costs
# one step and the run stays inside the device tool's 10-minute command limit.
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
DEADLINE=${GPU_CHECK_DEADLINE:-480}
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 10 ]; then
    echo "=== $name: skipped (the run's ${DEADLINE} s deadline)" | tee -a "$RES"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
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
C=16 L=8 N=5 BATCHES=16,32,64,128,256 B=64 BIG=256 NB_BATCHES=16,64,256 STEPS=(--steps 5 --warmup 2)
if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then
  C=2 L=3 N=1 BATCHES=2,4 B=2 BIG=4 NB_BATCHES=2 STEPS=(--steps 1 --warmup 1)
fi
NET=(--channels "$C" --layers "$L")
NB=(--space nb201 --channels "$C" --cells-per-stage "$N")
DIR=$(dirname "$RES")
rm -f "$DIR/pairs_darts.jsonl" "$DIR/pairs_nb201.jsonl" "$DIR/policy_sweep.jsonl"
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
  step "nvidia-smi" 15 nvidia-smi -L
fi
step "devices" 30 "$BIN" devices
step "check" 90 "$BIN" check
if python3 -c 'import torch' 2>/dev/null; then
  step "PyTorch vs darts-minus, DARTS space, batches $BATCHES" 180 \
    python3 tools/bench_torch.py --darts-minus "$BIN" "${NET[@]}" --batch "$BATCHES" \
    "${STEPS[@]}" --json-out "$DIR/pairs_darts.jsonl"
  step "PyTorch vs darts-minus, NAS-Bench-201, batches $NB_BATCHES" 100 \
    python3 tools/bench_torch.py --darts-minus "$BIN" "${NB[@]}" --batch "$NB_BATCHES" \
    "${STEPS[@]}" --json-out "$DIR/pairs_nb201.jsonl"
else
  echo "(no PyTorch here: the paired comparison is skipped)" | tee -a "$RES"
  step "bench: DARTS network, batches $BATCHES" 120 \
    "$BIN" bench "${NET[@]}" --batch "$BATCHES" "${STEPS[@]}"
  step "bench: NAS-Bench-201 network, batches $NB_BATCHES" 60 \
    "$BIN" bench "${NB[@]}" --batch "$NB_BATCHES" "${STEPS[@]}"
fi
for b in "$B" "$BIG"; do
  step "profile: DARTS network, batch $b" 60 \
    "$BIN" bench "${NET[@]}" --batch "$b" --steps 1 --warmup 1 --profile
  step "profile: NAS-Bench-201 network, batch $b" 40 \
    "$BIN" bench "${NB[@]}" --batch "$b" --steps 1 --warmup 1 --profile
done
# Launch-policy thresholds worth re-tuning on a new GPU, against the defaults (one round each;
# `tools/policy_sweep.py` runs more): more threads per launch and per weight gradient, more
# batch-norm workgroups, and batch norms taking their own statistics pass (no `*_stats`).
step "policy sweep: DARTS network, batches $B and $BIG" 90 \
  python3 tools/policy_sweep.py --bin "this=$BIN" --rounds 1 --steps 2 --warmup 1 \
  --policy '' --policy 'min_threads=262144' --policy 'weight_grad_threads=262144,weight_grad_chunk=262144' \
  --policy 'bn_target_groups=4096' --policy 'producer_stats_max=1' --config "${NET[*]} --batch $B,$BIG" \
  --json-out "$DIR/policy_sweep.jsonl"
step "bench: DARTS network, intermediates kept (no recomputation)" 60 \
  "$BIN" bench "${NET[@]}" --batch "$B,$BIG" --no-recompute "${STEPS[@]}"
step "bench: DARTS network, CPU launch strategy" 40 \
  "$BIN" bench "${NET[@]}" --batch "$B" --strategy cpu "${STEPS[@]}"
step "check under WebGPU's limits" 60 "$BIN" check --limits webgpu
echo "results: $RES ($SECONDS s)"

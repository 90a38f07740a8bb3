#!/usr/bin/env bash
# Instructions per iteration (forward + backward) of `cargo bench --bench kernels` cases on
# lavapipe, counted by callgrind: repeatable to ~0.3 % whatever else the machine is doing,
# where wall times on a shared 2-core box drift by tens of percent. Runs the bench binary
# twice (DARTS_BENCH_ITERS=1 and 5) and prints (I5 − I1) / 4; shader compilation and set-up
# cancel out. Everything runs on the submitting thread (LP_NUM_THREADS=0), with Mesa's and
# darts-minus' shader caches off so both runs compile alike.
#
#   cargo bench --bench kernels --no-run        # prints the binary's path
#   tools/kernel_instructions.sh target/release/deps/kernels-<hash> conv3x3 C16
#   B=8 tools/kernel_instructions.sh …          # batch (default 16)
#
# Instructions are not time (a per-lane load loop and a vector multiply-add both count one
# per instruction), but on llvmpipe, where loads dominate, they track it.
set -euo pipefail
bin=$1
shift
export MESA_SHADER_CACHE_DISABLE=true DARTS_MINUS_PIPELINE_CACHE=off LP_NUM_THREADS=0
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan} DARTS_BENCH_BATCH=${B:-16}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
count() {
  local iters=$1
  shift
  DARTS_BENCH_ITERS=$iters valgrind --tool=callgrind --smc-check=all-non-file \
    --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,
}
one=$(count 1 "$@")
five=$(count 5 "$@")
echo "$* (batch $DARTS_BENCH_BATCH): $(((five - one) / 4)) instructions per iteration"

#!/bin/bash
# jit_profile.sh: where the time goes inside lavapipe's JIT-compiled kernels (which no profiler
# can name). Runs a kernels-bench case for a while, samples it with `perf record` (cpu-clock:
# works in VMs without hardware counters), dumps the process's anonymous executable mappings
# (the JIT code) with gdb while it still runs, and writes one annotated disassembly per
# mapping: each instruction prefixed with its share of the samples.
#
#   tools/jit_profile.sh target/release/deps/kernels-<hash> conv3x3 C32   # bench filter words
#
# Output in $OUT (default /tmp/jit_profile): <mapping>.ann per region, listed hottest first.
# Needs perf, gdb and objdump. One thread (LP_NUM_THREADS=0), batch 8, so a kernel's code is
# one mapping per compiled pipeline; tell the kernels apart by what they do (a sampled case
# runs its forward and backward pipelines).
set -euo pipefail
BIN=$(readlink -f "$1"); shift
OUT=${OUT:-/tmp/jit_profile}
for tool in perf gdb objdump; do
  command -v $tool >/dev/null || { echo "jit_profile: needs $tool" >&2; exit 1; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
LP_NUM_THREADS=0 DARTS_BENCH_BATCH=8 DARTS_BENCH_ITERS=100000 "$BIN" --bench "$@" \
  >"$OUT/bench.out" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
sleep "${WARMUP_S:-6}"   # compilation and warm-up
perf record -e cpu-clock -F 4000 -p $PID -o "$OUT/perf.data" -- sleep "${SAMPLE_S:-4}" \
  >/dev/null 2>&1
# Anonymous executable mappings: the JIT's code.
grep -E '^[0-9a-f]+-[0-9a-f]+ r-xp' /proc/$PID/maps | grep -v '/\|\[' | cut -d' ' -f1 \
  >"$OUT/regions"
DUMPS=()
while IFS=- read -r a b; do DUMPS+=(-ex "dump memory $OUT/$a.bin 0x$a 0x$b"); done <"$OUT/regions"
gdb -p $PID -batch "${DUMPS[@]}" >/dev/null 2>&1
kill $PID
perf report -i "$OUT/perf.data" --sort sym --stdio 2>/dev/null >"$OUT/report.txt"
python3 - "$OUT" <<'PY'
import subprocess, sys, glob, os
out = sys.argv[1]
hot = {}
for line in open(f"{out}/report.txt"):
    f = line.split()
    if len(f) >= 3 and f[0].endswith("%") and f[2].startswith("0x"):
        hot[int(f[2], 16)] = float(f[0].rstrip("%"))
totals = []
for path in glob.glob(f"{out}/*.bin"):
    base = int(os.path.basename(path)[:-4], 16)
    asm = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
                          f"--adjust-vma={base:#x}", path], capture_output=True, text=True).stdout
    lines, total = [], 0.0
    for l in asm.splitlines():
        try:
            a = int(l.strip().split(":")[0], 16)
        except ValueError:
            continue
        h = hot.get(a, 0.0)
        total += h
        lines.append((f"{h:5.2f} " if h else "      ") + l)
    open(path[:-4] + ".ann", "w").write("\n".join(lines) + "\n")
    totals.append((total, path[:-4] + ".ann"))
for total, p in sorted(totals, reverse=True):
    if total > 0:
        print(f"{total:6.2f} %  {p}")
PY

#!/usr/bin/env bash
# bench_pack.sh - the .smelt packed format on tiny-llama-kjv's weights: % saved at the default
# level for the BF16 safetensors file and for F32, F16, BF16, Q4_K_M and Q8_0 GGUFs converted
# from it; compression and decompression speed per core (bench/bench_pack.c: one thread, CPU
# time of the process over REPS runs, so that other processes on a shared machine do not count;
# compression is sm_smelt_pack end to end, decompression sm_smelt_verify_file: every chunk
# decoded and every checksum computed, nothing written); the references the issue
# names (zstd -3 of the file, zstd -3 of the two byte planes; order-0 entropy bound of the
# byte planes and of the exponent|sign+mantissa regrouping, when python3 with numpy is there).
#
# usage: scripts/bench_pack.sh   (env: SMELT_BUILD_DIR=build SMELT_ASSETS=../shared REPS=10)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
reps=${REPS:-10}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
M=$assets/models/tiny-llama-kjv
S=$build/smelt
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 2; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt bench_pack >/dev/null
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export SMELT_NO_SYNC=1 SMELT_NO_PROGRESS=1

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", 100 * (1 - b / a)}'; }
# row LABEL FILE: bench_pack's per-core numbers (CPU time in process, one thread, $reps runs)
row() {
  "$build/bench_pack" "$2" "$W/x.smelt" "$reps" | awk -v t="$1" '{printf "| %s | %d | %d | %.1f%% | %.0f | %.2f |\n", t, $1, $2, 100 * (1 - $2 / $1), $1 / $3 / 1e6, $1 / $4 / 1e9}'
}

in=$M/model.safetensors
n=$(stat -c %s "$in")
echo "tiny-llama-kjv, default level, 1 thread, CPU time in process ($reps runs; speeds are of the original bytes):"
echo "| input | bytes | .smelt bytes | saved | compression MB/s per core | decompression GB/s per core |"
echo "|---|---|---|---|---|---|"
row "BF16 safetensors" "$in"
for t in f32 f16 bf16; do "$S" convert "$M" -o "$W/$t.gguf" --outtype $t -q; done
"$S" quantize "$W/f32.gguf" "$W/q4km.gguf" Q4_K_M -q
"$S" quantize "$W/f32.gguf" "$W/q8.gguf" Q8_0 -q
for t in F32:f32 F16:f16 BF16:bf16 Q4_K_M:q4km Q8_0:q8; do row "${t%%:*} GGUF" "$W/${t#*:}.gguf"; done

echo
echo "references on the same BF16 file:"
if command -v zstd >/dev/null; then
  z=$(zstd -3 -c -q "$in" | wc -c)
  echo "  zstd -3 of the file: $(pct "$n" "$z") saved"
fi
if python3 -c 'import numpy' 2>/dev/null || /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  py=python3; python3 -c 'import numpy' 2>/dev/null || py=/usr/bin/python3
  $py - "$in" "$W" <<'PY'
import json, struct, sys, subprocess, numpy as np
path, w = sys.argv[1], sys.argv[2]
b = open(path, 'rb').read()
h = struct.unpack('<Q', b[:8])[0]
d = np.frombuffer(b[8 + h:], dtype=np.uint16)
def H(x):
    c = np.bincount(x, minlength=256).astype(float); p = c[c > 0] / c.sum(); return -(p * np.log2(p)).sum()
lo, hi = (d & 0xff).astype(np.uint8), (d >> 8).astype(np.uint8)
e, sm = ((d >> 7) & 0xff).astype(np.uint8), (((d >> 8) & 0x80) | (d & 0x7f)).astype(np.uint8)
print("  order-0 bound, byte planes (lo, hi): %.1f%% saved" % (100 * (16 - H(lo) - H(hi)) / 16))
print("  order-0 bound, exponent | sign+mantissa planes: %.1f%% saved" % (100 * (16 - H(e) - H(sm)) / 16))
try:
    z = sum(len(subprocess.run(['zstd', '-3', '-c', '-q'], input=x.tobytes(), capture_output=True).stdout) for x in (lo, hi))
    print("  zstd -3 of the byte planes: %.1f%% saved" % (100 * (1 - z / (2 * len(d)))))
except FileNotFoundError:
    pass
PY
fi

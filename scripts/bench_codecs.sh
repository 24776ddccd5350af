#!/usr/bin/env bash
# Codec throughput (MB/s of f32 input) for the scalar reference and the best SIMD kernels.
# usage: scripts/bench_codecs.sh [bench_codecs options: -t threads -r rows -c cols -s seconds] [types]
# Target: on Q4_K and Q6_K (what Q4_K_M is made of) smelt's codecs at least 1.5x ggml's at equal
# threads (on the development machine ggml's reference quantizer ran ~8-16 MB/s for Q4_K and
# ~30-50 MB/s for Q6_K on one core; smelt's AVX-512 kernels ~100-200 and ~250).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_codecs >/dev/null
for isa in scalar default; do
  if [ "$isa" = scalar ]; then SMELT_ISA=scalar "$build/bench_codecs" "$@"; else "$build/bench_codecs" "$@"; fi
  echo
done

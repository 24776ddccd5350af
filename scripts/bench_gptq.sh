#!/usr/bin/env bash
# bench_gptq.sh - GPTQ speed on synthetic data: the machine's double-precision GEMM peak (our
# AVX-512/AVX2 micro-kernel in cache, our blocked DGEMM), then for a 4096x4096, an 11008x4096
# (gate/up: 4096 inputs) and a 4096x11008 (down: 11008 inputs) Linear the Hessian accumulation
# (2048-token samples), the factorization of H^-1, and GPTQ int4 g128 and Q4_K.
#
# usage: scripts/bench_gptq.sh [SAMPLES]     (default 2 samples of 2048 tokens)
#   The Hessian's time is linear in the tokens and is extrapolated to 128 x 2048 = 262144
#   tokens; run with SAMPLES=128 on a machine that has the time to measure it directly.
#   SMELT_BENCH_QUICK=1 skips the loss reports and Q4_K of the 11008-input linear.
#   SMELT_THREADS sets the threads (default: all cores). GFLOP per CPU-second is printed next
#   to wall-clock GFLOP/s: on a shared machine it shows what a core does when it runs.
# The program is build/bench_gptq (bench/bench_gptq.c; built with the project, not a ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-2}
build=${SMELT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_gptq >/dev/null
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build"/bench_gptq peak
"$build"/bench_gptq linear 4096 4096 "$samples" 128
"$build"/bench_gptq linear 11008 4096 "$samples" 128
"$build"/bench_gptq linear 4096 11008 "$samples" 128 ${SMELT_BENCH_QUICK:+quick}

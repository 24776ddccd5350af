#!/usr/bin/env bash
# bench_gptq.sh - GPTQ speed on synthetic data, next to the machine's measured double-precision
# GEMM peak (our AVX-512/AVX2 micro-kernel in cache, our blocked DGEMM, and cuBLAS DGEMM when
# the GPU is benchmarked):
#  1. for a 4096x4096, an 11008x4096 (gate/up: 4096 inputs) and a 4096x11008 (down: 11008
#     inputs) Linear: the Hessian accumulation (2048-token samples), the factorization of
#     H^-1, and GPTQ int4 g128 and Q4_K (build/bench_gptq, bench/bench_gptq.c);
#  2. one decoder layer of Llama-2-7B's shapes (hidden 4096, MLP 11008, 32 heads; random BF16
#     weights from bench_gen_checkpoint, KJV calibration text): `smelt gptq --to hf` (int4 g128,
#     true-sequential), whose --json report splits the layer's time into the block's forward
#     passes, the Hessians and the quantization.
#
# usage: scripts/bench_gptq.sh [SAMPLES]     (default 2 samples of 2048 tokens)
#   Forward passes and Hessians are linear in the tokens and are extrapolated to 128 x 2048 =
#   262144 tokens (GPTQ's usual calibration); run with SAMPLES=128 on a machine that has the
#   time to measure it directly.
#   BENCH_DEVICE=cuda   also run both parts on the GPU (--device cuda)
#   SMELT_BENCH_QUICK=1 skips the loss reports and Q4_K of the 11008-input linear
#   SMELT_BENCH_LAYER=0 skips part 2;  BENCH_DIR (default /tmp/smelt-bench-gptq) keeps the
#   generated checkpoint;  SMELT_THREADS sets the threads (default: all cores). GFLOP per
#   CPU-second is printed next to wall-clock GFLOP/s: on a shared machine it shows what a core
#   does when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-2}
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-gptq}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
devices=(cpu)
[ "${BENCH_DEVICE:-cpu}" = cuda ] && devices+=(cuda)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_gptq smelt bench_gen_checkpoint >/dev/null
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
command -v nvidia-smi >/dev/null && [ ${#devices[@]} -gt 1 ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for dev in "${devices[@]}"; do
  echo
  echo "==== GPTQ on the $dev"
  BENCH_DEVICE=$dev "$build"/bench_gptq peak
  BENCH_DEVICE=$dev "$build"/bench_gptq linear 4096 4096 "$samples" 128
  BENCH_DEVICE=$dev "$build"/bench_gptq linear 11008 4096 "$samples" 128
  BENCH_DEVICE=$dev "$build"/bench_gptq linear 4096 11008 "$samples" 128 ${SMELT_BENCH_QUICK:+quick}
done

[ "${SMELT_BENCH_LAYER:-1}" = 0 ] && exit 0
model=$work/llama2-7b-layer
if [ ! -f "$model/model.safetensors" ]; then
  mkdir -p "$work"
  "$build"/bench_gen_checkpoint "$model" 1 4096 11008 32 32
  for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
    ln -sf "$assets/models/tiny-llama-kjv/$f" "$model/$f"
  done
fi
for dev in "${devices[@]}"; do
  echo
  echo "==== one Llama-2-7B-shaped decoder layer, $samples x 2048 calibration tokens, GPTQ int4 g128 on the $dev"
  rm -rf "$work/out-$dev"
  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} /usr/bin/time -f "%e %M" -o "$work/time-$dev" \
    "$build"/smelt gptq "$model" --calib "$assets/text/kjv-calib.txt" --samples "$samples" --seqlen 2048 \
    --to hf -o "$work/out-$dev" --no-loss --json --device "$dev" > "$work/report-$dev.json"
  read -r wall rss < "$work/time-$dev"
  python3 - "$work/report-$dev.json" "$samples" "$wall" "$rss" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
samples, wall, rss_kb = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
l = r["layers"][0]
f, h, q, t = l["forward_seconds"], l["hessian_seconds"], l["quantize_seconds"], l["seconds"]
k = 128 / samples
print(f"  measured: layer {t:.1f} s = forward passes {f:.1f} s + Hessians {h:.1f} s + factorizations and GPTQ {q:.1f} s"
      f" (+ {t - f - h - q:.1f} s other); whole command {wall:.1f} s, peak RSS {rss_kb / 1048576:.2f} GiB")
print(f"  at 128 x 2048 tokens: layer {f * k + h * k + q:.0f} s = forward {f * k:.0f} s + Hessians {h * k:.0f} s"
      f" + quantization {q:.0f} s  (Llama-2-7B, 32 layers: {(f * k + h * k + q) * 32 / 3600:.1f} h)")
EOF
done

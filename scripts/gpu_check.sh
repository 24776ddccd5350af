#!/usr/bin/env bash
# gpu_check.sh - build smelt with CUDA and compare the GPU paths with the CPU ones:
#  - the forward pass on the shared tiny-llama-kjv model: perplexity (n_ctx 256) and every
#    chunk's mean score must agree to 1e-4 relative, and the GPU run must agree with the torch
#    reference too;
#  - GPTQ: tests/test_gptq_cuda.c run against the real plugin (Hessian, inverse factor, every
#    grid, and whole `smelt gptq --device cuda` runs, each against the CPU path);
#  - every architecture fixture (Qwen3, Gemma 2, Gemma 3, Phi-3, Phi-4-mini with longrope and
#    partial rotary): tests/test_cuda_block.c against the real plugin - the CUDA forward's logits,
#    the calibration block's outputs and Hessians, `smelt ppl --device cuda` vs cpu, and
#    `smelt gptq --device cuda` vs cpu;
#  - the plugin is compiled with warnings as errors (nvcc -Werror all-warnings, host -Wall -Wextra -Werror).
# Needs nvcc and a CUDA device. usage: scripts/gpu_check.sh [CHUNKS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
chunks=${1:-20}
assets=${SMELT_ASSETS:-$(cd .. && pwd)/shared}
model=$assets/models/tiny-llama-kjv
tokens=$model/reference/tokens_eval.txt
build=${SMELT_BUILD_DIR:-build-cuda}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSMELT_CUDA=ON -DSMELT_WERROR=ON \
  -DCMAKE_CUDA_FLAGS="-Werror all-warnings -Xcompiler=-Wall,-Wextra,-Werror" >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt smelt_cuda test_gptq_cuda test_cuda_block >/dev/null
smelt=$build/smelt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dev in cpu cuda; do
  /usr/bin/time -f "$dev: %e s" "$smelt" ppl "$model" --tokens "$tokens" --ctx 256 --chunks "$chunks" --device $dev --json \
    > "$out/$dev.json"
done
# save with the CPU, score the GPU against it: KLD ~ 0 and the same argmax everywhere
"$smelt" ppl "$model" --tokens "$tokens" --ctx 256 --chunks "$chunks" --save-logits "$out/cpu.logits" --quiet >/dev/null
"$smelt" ppl "$model" --kld "$out/cpu.logits" --device cuda --json > "$out/kld.json"
num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }
chunk_list() { sed -E 's/.*"chunk_mean_nll":\[([^]]*)\].*/\1/' "$1" | tr ',' '\n'; }
status=0
cpu=$(num "$out/cpu.json" ppl) gpu=$(num "$out/cuda.json" ppl)
echo "ppl cpu $cpu  gpu $gpu"
awk -v a="$cpu" -v b="$gpu" 'BEGIN { d = a / b - 1; if (d < 0) d = -d; exit !(d < 1e-4) }' || { echo "FAIL: ppl differs"; status=1; }
worst=$(paste <(chunk_list "$out/cpu.json") <(chunk_list "$out/cuda.json") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > w) w = d } END { printf "%.3g", w }')
echo "largest per-chunk mean NLL difference: $worst"
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || { echo "FAIL: chunk scores differ"; status=1; }
echo "GPU vs CPU log-probabilities: KLD $(num "$out/kld.json" kld_mean) (max $(num "$out/kld.json" kld_max)), same top token $(num "$out/kld.json" top1_agreement)"
awk -v k="$(num "$out/kld.json" kld_mean)" 'BEGIN { exit !(k < 1e-5 && k > -1e-5) }' || { echo "FAIL: KLD"; status=1; }
if [ "$chunks" -ge 171 ]; then
  awk -v a="$gpu" 'BEGIN { d = a / 16.094474 - 1; if (d < 0) d = -d; exit !(d < 1e-3) }' ||
    { echo "FAIL: GPU ppl $gpu vs torch reference 16.094474"; status=1; }
fi
echo "== GPTQ: GPU vs CPU (test_gptq_cuda with $build/libsmelt_cuda.so)"
(cd "$build" && SMELT_CUDA_PLUGIN=$PWD/libsmelt_cuda.so SMELT_ASSETS=$assets SMELT_BIN=$PWD/smelt SMELT_NO_PROGRESS=1 \
  ./test_gptq_cuda) || { echo "FAIL: GPTQ on the GPU"; status=1; }
echo "== every architecture's block: GPU vs CPU (test_cuda_block with $build/libsmelt_cuda.so)"
(cd "$build" && SMELT_CUDA_PLUGIN=$PWD/libsmelt_cuda.so SMELT_ASSETS=$assets SMELT_BIN=$PWD/smelt SMELT_NO_PROGRESS=1 \
  SMELT_SOURCE_DIR=$PWD/.. ./test_cuda_block) || { echo "FAIL: an architecture's block on the GPU"; status=1; }
[ $status = 0 ] && echo "gpu_check: OK" || echo "gpu_check: FAILED"
exit $status

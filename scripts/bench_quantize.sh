#!/usr/bin/env bash
# bench_quantize.sh - `smelt quantize` throughput (MB/s of F16 input) per recipe at 1 thread
# and at all threads, next to llama-quantize on the same file when LLAMA_CPP_BIN points to a
# llama.cpp build (its bin/ directory). The input is a synthetic F16 GGUF with TinyLlama-1.1B
# layer shapes (bench_gen_checkpoint, then smelt convert). Each command runs twice; the second
# (warm page cache) run counts. Target: >= 1.5x llama-quantize's throughput for Q4_K_M at
# equal threads.
#
# The IQ1/IQ2/IQ3 recipes get an importance matrix (smelt imatrix over 2 chunks of 128 tokens of
# kjv-calib.txt), the same file for both tools.
#
# usage: scripts/bench_quantize.sh [RECIPE...]   (default: Q4_K_M Q8_0 Q4_0 Q5_K_M Q6_K IQ4_XS)
#        env: BENCH_DIR=/tmp/smelt-bench-quantize BENCH_LAYERS=4 SMELT_BUILD_DIR=build
#             SMELT_ASSETS=../shared LLAMA_CPP_BIN=
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-quantize}
layers=${BENCH_LAYERS:-4}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(Q4_K_M Q8_0 Q4_0 Q5_K_M Q6_K IQ4_XS)
all=$(nproc)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$all" --target smelt bench_gen_checkpoint >/dev/null

mkdir -p "$work/model"
in=$work/model-f16.gguf
if [ ! -f "$in" ]; then
  echo "generating a $layers-layer checkpoint and its F16 GGUF in $work ..."
  "$build/bench_gen_checkpoint" "$work/model" "$layers"
  for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
    ln -sf "$assets/models/tiny-llama-kjv/$f" "$work/model/$f"
  done
  "$build/smelt" convert "$work/model" -o "$in" --outtype f16 --quiet
fi
mb=$(awk -v b="$(stat -c %s "$in")" 'BEGIN { printf "%.1f", b / 1048576 }')

# secs CMD...: wall seconds of the second of two runs
secs() {
  local t=0
  for _ in 1 2; do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }')
  done
  echo "$t"
}

echo "input: $in ($mb MiB, F16), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $all cores"
printf '%-8s %7s %12s %12s %14s %8s\n' recipe threads "smelt s" "smelt MB/s" "llama.cpp MB/s" ratio
for r in "${recipes[@]}"; do
  im=()
  if [[ "$r" =~ ^IQ[123] ]]; then
    [ -f "$work/imatrix.gguf" ] || "$build/smelt" imatrix "$in" --text "$assets/text/kjv-calib.txt" -c 128 --chunks 2 \
      -o "$work/imatrix.gguf" --quiet
    im=(--imatrix "$work/imatrix.gguf")
  fi
  for t in 1 "$all"; do
    ts=$(secs "$build/smelt" quantize "$in" "$work/out.gguf" "$r" --threads "$t" --quiet "${im[@]}")
    sm=$(awk -v m="$mb" -v s="$ts" 'BEGIN { printf "%.1f", m / s }')
    lq=- ratio=-
    if [ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-quantize" ]; then
      tl=$(secs "$LLAMA_CPP_BIN/llama-quantize" "${im[@]}" "$in" "$work/out-llama.gguf" "$r" "$t")
      lq=$(awk -v m="$mb" -v s="$tl" 'BEGIN { printf "%.1f", m / s }')
      ratio=$(awk -v a="$tl" -v b="$ts" 'BEGIN { printf "%.2fx", a / b }')
    fi
    printf '%-8s %7s %12.2f %12s %14s %8s\n' "$r" "$t" "$ts" "$sm" "$lq" "$ratio"
  done
done
rm -f "$work/out.gguf" "$work/out-llama.gguf"

#!/usr/bin/env bash
# bench_memory.sh - peak resident memory (GNU time's "Maximum resident set size": the pages of
# mapped input files count, as they do against a container's memory limit) of the streaming
# commands on a synthetic model of ~1 GB: smelt convert (HF BF16 -> F16 GGUF), smelt quantize
# (F16 GGUF -> each recipe), smelt gptq (F16 GGUF -> gguf:Q4_K_M, and HF -> hf), next to
# llama-quantize when LLAMA_CPP_BIN points to a llama.cpp build (its bin/ directory). The model
# has TinyLlama-1.1B's layer shapes (bench_gen_checkpoint), BENCH_LAYERS of them (default 11:
# 1.0 GB in F16). Expected: every smelt command's peak is its working set, whatever the number
# of layers: convert ~10 MiB, quantize ~35 MiB (one chunk of rows); gptq ~950 MiB at these
# widths, almost all of it one block's Hessians and their inverse (n_ff^2 doubles: 5632^2 x 8
# = 254 MB each), the same for 1 layer or 11. tests/test_memory.c is the regression test.
#
# usage: scripts/bench_memory.sh [RECIPE...]   (default: Q4_K_M Q8_0)
#        env: BENCH_DIR=/tmp/smelt-bench-memory BENCH_LAYERS=11 BENCH_GPTQ=1 SMELT_BUILD_DIR=build
#             SMELT_ASSETS=../shared LLAMA_CPP_BIN=
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-memory}
layers=${BENCH_LAYERS:-11}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(Q4_K_M Q8_0)
gnu_time=/usr/bin/time
"$gnu_time" -v true >/dev/null 2>&1 || { echo "bench_memory: needs GNU time (/usr/bin/time; Debian package 'time')" >&2; exit 1; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt bench_gen_checkpoint >/dev/null

mkdir -p "$work"
model=$work/model
if [ ! -f "$model/model.safetensors" ]; then
  echo "generating a $layers-layer BF16 checkpoint in $model ..."
  "$build/bench_gen_checkpoint" "$model" "$layers"
  for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
    ln -sf "$assets/models/tiny-llama-kjv/$f" "$model/$f"
  done
fi
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# peak NAME INPUT CMD...: one table row with the command's peak RSS and wall time
peak() {
  local name=$1 input=$2
  shift 2
  "$gnu_time" -v -o "$work/time.txt" "$@" >"$work/cmd.log" 2>&1 || { echo "$name failed:"; tail -5 "$work/cmd.log"; return 1; }
  local kb wall
  kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt")
  printf '%-34s %10s %12s %10s\n' "$name" "$(mib "$input")" "$((kb / 1024))" "$wall"
}

f16=$work/model-f16.gguf
echo "model: $layers layers, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
printf '%-34s %10s %12s %10s\n' command "input MiB" "peak RSS MiB" wall
peak "smelt convert --outtype f16" "$model/model.safetensors" \
  "$build/smelt" convert "$model" -o "$f16" --outtype f16 --quiet
for r in "${recipes[@]}"; do
  peak "smelt quantize $r" "$f16" "$build/smelt" quantize "$f16" "$work/out.gguf" "$r" --quiet
  if [ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-quantize" ]; then
    peak "llama-quantize $r" "$f16" "$LLAMA_CPP_BIN/llama-quantize" "$f16" "$work/out-llama.gguf" "$r"
  fi
done
if [ "${BENCH_GPTQ:-1}" != 0 ]; then
  calib=$assets/text/kjv-calib.txt
  peak "smelt gptq --to gguf:Q4_K_M" "$f16" "$build/smelt" gptq "$f16" --calib "$calib" --samples 4 --seqlen 64 \
    --to gguf:Q4_K_M -o "$work/out.gguf" --quiet --no-loss
  peak "smelt gptq --to hf (from HF BF16)" "$model/model.safetensors" "$build/smelt" gptq "$model" --calib "$calib" \
    --samples 4 --seqlen 64 --to hf -o "$work/out-hf" --quiet --no-loss
fi
rm -rf "$work/out.gguf" "$work/out-llama.gguf" "$work/out-hf" "$work/time.txt" "$work/cmd.log"

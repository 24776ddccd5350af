#!/usr/bin/env bash
# bench_ppl.sh - tokens/s of `smelt ppl` next to llama.cpp's llama-perplexity (when
# LLAMA_CPP_BIN is set) at equal threads, on F16, Q8_0 and Q4_K_M GGUFs of a synthetic
# Llama-shaped model large enough to be compute-bound (TinyLlama-1.1B's layer shape: hidden
# 2048, intermediate 5632, 32 heads, 4 KV heads; BENCH_LAYERS layers, vocab 2048 with
# tiny-llama-kjv's tokenizer). The GGUFs are made with our own tools (smelt convert, smelt
# quantize). Each tool evaluates the same chunks of kjv-eval.txt; the table shows tokens/s
# of the evaluation (model loading and tokenization excluded on both sides) and the
# perplexities, which must agree closely (the weights are random: the values mean nothing).
#
# usage: scripts/bench_ppl.sh
# env: BENCH_DIR=/tmp/smelt-bench-ppl BENCH_LAYERS=4 BENCH_THREADS=$(nproc) BENCH_CTX=512
#      BENCH_CHUNKS=4 SMELT_BUILD_DIR=build SMELT_ASSETS=../shared
#      LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin LLAMA_PPL_ARGS="..." (extra llama-perplexity
#      arguments, e.g. -nr where its repacked/AMX kernels do not run)
#      BENCH_SETUP_ONLY=1 (make the GGUFs and stop: scripts/bench_generate.sh uses the same)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-ppl}
layers=${BENCH_LAYERS:-4}
threads=${BENCH_THREADS:-$(nproc)}
ctx=${BENCH_CTX:-512}
chunks=${BENCH_CHUNKS:-4}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
text=$assets/text/kjv-eval.txt

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt bench_gen_checkpoint >/dev/null
smelt=$build/smelt
model=$work/model
mkdir -p "$model"
if [ ! -f "$model/model.safetensors" ]; then
  echo "generating a $layers-layer checkpoint in $model ..."
  "$build/bench_gen_checkpoint" "$model" "$layers"
fi
for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
  ln -sf "$assets/models/tiny-llama-kjv/$f" "$model/$f"
done
[ -f "$work/f16.gguf" ] || "$smelt" convert "$model" -o "$work/f16.gguf" --outtype f16 >/dev/null
[ -f "$work/q8_0.gguf" ] || "$smelt" quantize "$work/f16.gguf" "$work/q8_0.gguf" Q8_0 --quiet >/dev/null
[ -f "$work/q4_k_m.gguf" ] || "$smelt" quantize "$work/f16.gguf" "$work/q4_k_m.gguf" Q4_K_M --quiet >/dev/null
[ -z "${BENCH_SETUP_ONLY:-}" ] || exit 0

num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }
echo "model: $layers layers of TinyLlama-1.1B shape, ctx $ctx, $chunks chunks, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
printf '%-8s %14s %14s %8s %14s %14s\n' type "smelt tok/s" "llama tok/s" ratio "smelt ppl" "llama ppl"
for t in f16 q8_0 q4_k_m; do
  g=$work/$t.gguf
  "$smelt" ppl "$g" --text "$text" --ctx "$ctx" --chunks "$chunks" --threads "$threads" --json > "$work/smelt-$t.json"
  s_tps=$(num "$work/smelt-$t.json" tokens_per_second)
  s_ppl=$(num "$work/smelt-$t.json" ppl)
  l_tps=- l_ppl=- ratio=-
  if [ -n "${LLAMA_CPP_BIN:-}" ]; then
    # shellcheck disable=SC2086
    if "$LLAMA_CPP_BIN/llama-perplexity" -m "$g" -f "$text" -c "$ctx" -b "$ctx" --chunks "$chunks" -t "$threads" \
         ${LLAMA_PPL_ARGS:-} > "$work/llama-$t.txt" 2>&1; then
      # evaluation time from its log timestamps (M.SS.mmm.uuu): "calculating perplexity" to
      # "Final estimate", the same span smelt's tokens_per_second covers
      l_tps=$(awk -v toks=$((ctx * chunks)) '
        function t(s, a) { split(s, a, "."); return a[1] * 60 + a[2] + a[3] / 1e3 + a[4] / 1e6 }
        /calculating perplexity/ { t0 = t($1) } /Final estimate/ { t1 = t($1) }
        END { if (t1 > t0) printf "%.1f", toks / (t1 - t0); else print "?" }' "$work/llama-$t.txt")
      l_ppl=$(sed -nE 's/.*Final estimate: PPL = ([0-9.]+).*/\1/p' "$work/llama-$t.txt")
      ratio=$(awk -v a="$s_tps" -v b="$l_tps" 'BEGIN { printf "%.2f", a / b }')
    else
      l_tps="failed($?)"
    fi
  fi
  printf '%-8s %14.1f %14s %8s %14.4f %14s\n' "$t" "$s_tps" "$l_tps" "$ratio" "$s_ppl" "$l_ppl"
done

#!/usr/bin/env bash
# bench_generate.sh - one-token-at-a-time speed (generation) of smelt next to llama.cpp, on the
# F16, Q8_0 and Q4_K_M GGUFs of scripts/bench_ppl.sh (made by it if missing), two ways:
#   decode:   `smelt ppl --batch 1 --int-dot` against `llama-perplexity -b 1 -ub 1` (both multiply
#             quantized weights with 8-bit activations and integer dots): every token is a
#             forward pass of one token over the KV cache (matrix-vector products), the same
#             threads on both sides; tokens/s of the evaluation (loading excluded);
#   generate: `smelt generate -n N --ignore-eos` against llama-simple -n N (its "eval time"
#             tokens/s; llama-simple takes no thread option and runs ggml's default of 4
#             threads), a short prompt on both.
# Each measurement runs BENCH_REPEAT times, smelt and llama.cpp interleaved (a machine shared
# with other work slows whichever runs at a bad moment); the table shows the best of each.
#
# usage: scripts/bench_generate.sh
# env: as scripts/bench_ppl.sh (BENCH_DIR, BENCH_LAYERS, BENCH_THREADS, SMELT_BUILD_DIR,
#      SMELT_ASSETS, LLAMA_CPP_BIN), plus BENCH_DECODE_CTX=128 (tokens of the decode run),
#      BENCH_GEN=64 (tokens generated), BENCH_REPEAT=3, BENCH_TYPES="f16 q8_0 q4_k_m"
set -euo pipefail
export LC_ALL=C # generated text may be invalid UTF-8: sed must still match the JSON around it
cd "$(dirname "$0")/.."
BENCH_SETUP_ONLY=1 scripts/bench_ppl.sh
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-ppl}
threads=${BENCH_THREADS:-$(nproc)}
ctx=${BENCH_DECODE_CTX:-128}
ngen=${BENCH_GEN:-64}
repeat=${BENCH_REPEAT:-3}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
text=$assets/text/kjv-eval.txt
smelt=$build/smelt
llama=${LLAMA_CPP_BIN:-}
prompt="In the beginning"

num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || (b != "-" && b + 0 > a + 0)) printf "%.2f\n", b; else print a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

echo "decode: ctx $ctx, batch 1, $threads threads; generate: $ngen tokens (smelt $threads threads, llama-simple 4); best of $repeat; isa $("$smelt" --version | sed -n 's/^isa \([a-z0-9]*\).*/\1/p'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
printf '%-8s %12s %12s %7s %12s %12s %7s\n' type "smelt dec/s" "llama dec/s" ratio "smelt gen/s" "llama gen/s" ratio
for t in ${BENCH_TYPES:-f16 q8_0 q4_k_m}; do
  g=$work/$t.gguf
  sd=- ld=- sg=- lg=-
  for _ in $(seq "$repeat"); do
    "$smelt" ppl "$g" --text "$text" --ctx "$ctx" --batch 1 --int-dot --chunks 1 --threads "$threads" --json > "$work/dec-smelt.json"
    sd=$(best "$sd" "$(num "$work/dec-smelt.json" tokens_per_second)")
    "$smelt" generate "$g" -p "$prompt" -n "$ngen" --ignore-eos --threads "$threads" --json > "$work/gen-smelt.json"
    sg=$(best "$sg" "$(num "$work/gen-smelt.json" tokens_per_second)")
    if [ -n "$llama" ]; then
      if "$llama/llama-perplexity" -m "$g" -f "$text" -c "$ctx" -b 1 -ub 1 --chunks 1 -t "$threads" > "$work/dec-llama.txt" 2>&1; then
        v=$(awk -v toks="$ctx" '
          function t(s, a) { split(s, a, "."); return a[1] * 60 + a[2] + a[3] / 1e3 + a[4] / 1e6 }
          /calculating perplexity/ { t0 = t($1) } /Final estimate/ { t1 = t($1) }
          END { if (t1 > t0) printf "%.2f", toks / (t1 - t0); else print "-" }' "$work/dec-llama.txt")
        ld=$(best "$ld" "$v")
      fi
      if "$llama/llama-simple" -m "$g" -n "$ngen" "$prompt" > "$work/gen-llama.txt" 2>&1; then
        v=$(sed -nE 's/.* eval time = .* runs .* ([0-9.]+) tokens per second.*/\1/p' "$work/gen-llama.txt" | grep -v '^$' | tail -1)
        lg=$(best "$lg" "${v:--}")
      fi
    fi
  done
  printf '%-8s %12s %12s %7s %12s %12s %7s\n' "$t" "$sd" "$ld" "$(ratio "$sd" "$ld")" "$sg" "$lg" "$(ratio "$sg" "$lg")"
done

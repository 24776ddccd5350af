#!/usr/bin/env bash
# GPTQ acceptance run: tiny-llama-kjv (F32 GGUF), calibrated on kjv-calib.txt, evaluated on
# kjv-eval.txt at ctx 256 against the F32 model. For each grid (Q4_0, Q4_K_M) it compares
#   rtn     smelt quantize without importance weights (bytes identical to llama-quantize's)
#   imatrix llama-quantize --imatrix with llama-imatrix's matrix of the calibration text
#           (needs LLAMA_CPP_BIN; without it smelt imatrix + smelt quantize, same bytes)
#   gptq    smelt gptq --to gguf:RECIPE
# by KLD and delta-ppl in smelt's validator (smelt ppl --kld) and, with LLAMA_CPP_BIN, in
# llama-perplexity --kl-divergence. Prints a markdown table.
#
# usage: scripts/gptq_acceptance.sh [F32.gguf]   (default: smelt convert of the f32 checkpoint)
# env: LLAMA_CPP_BIN (llama.cpp's bin dir), SMELT_BIN, SMELT_ASSETS, GPTQ_ARGS (extra smelt gptq
#      options, default "--samples 112 --seqlen 256 --in-order"), THREADS, KEEP (work dir kept)
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=${SMELT_BIN:-build/smelt}
ASSETS=${SMELT_ASSETS:-../shared}
CALIB=$ASSETS/text/kjv-calib.txt
EVAL=$ASSETS/text/kjv-eval.txt
THREADS=${THREADS:-$(nproc)}
GPTQ_ARGS=${GPTQ_ARGS:---samples 112 --seqlen 256 --in-order}
LC=${LLAMA_CPP_BIN:-}
W=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $W" >&2 || trap 'rm -rf "$W"' EXIT

F32=${1:-}
if [ -z "$F32" ]; then
  F32=$W/f32.gguf
  "$SMELT" convert "$ASSETS/models/tiny-llama-kjv/f32" --outtype f32 -o "$F32" >/dev/null
fi

json_num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }

# base log-probabilities
"$SMELT" ppl "$F32" --text "$EVAL" --ctx 256 --save-logits "$W/base.bin" --json --threads "$THREADS" >"$W/base.json"
if [ -n "$LC" ]; then
  "$LC/llama-perplexity" -m "$F32" -f "$EVAL" -c 256 -t "$THREADS" --kl-divergence-base "$W/lc-base.bin" \
    >"$W/lc-base.log" 2>&1
  "$LC/llama-imatrix" -m "$F32" -f "$CALIB" -c 256 -t "$THREADS" --no-ppl -o "$W/imatrix.gguf" >"$W/imatrix.log" 2>&1
else
  "$SMELT" imatrix "$F32" --text "$CALIB" --ctx 256 -o "$W/imatrix.gguf" --quiet --threads "$THREADS" >/dev/null
fi

echo "| grid | method | smelt KLD | smelt Δppl | llama.cpp KLD | llama.cpp Δppl |"
echo "|---|---|---:|---:|---:|---:|"
for recipe in Q4_0 Q4_K_M; do
  "$SMELT" quantize "$F32" "$W/rtn-$recipe.gguf" "$recipe" --quiet >/dev/null
  if [ -n "$LC" ]; then
    "$LC/llama-quantize" --imatrix "$W/imatrix.gguf" "$F32" "$W/imatrix-$recipe.gguf" "$recipe" "$THREADS" \
      >"$W/q-$recipe.log" 2>&1
  else
    "$SMELT" quantize "$F32" "$W/imatrix-$recipe.gguf" "$recipe" --imatrix "$W/imatrix.gguf" --quiet >/dev/null
  fi
  # shellcheck disable=SC2086
  "$SMELT" gptq "$F32" --calib "$CALIB" $GPTQ_ARGS --to "gguf:$recipe" -o "$W/gptq-$recipe.gguf" \
    --threads "$THREADS" --json >"$W/gptq-$recipe.json"
  for method in rtn imatrix gptq; do
    m=$W/$method-$recipe.gguf
    "$SMELT" ppl "$m" --kld "$W/base.bin" --json --threads "$THREADS" >"$W/k.json"
    skld=$(json_num "$W/k.json" kld_mean)
    sdppl=$(json_num "$W/k.json" delta_ppl)
    lkld=- ldppl=-
    if [ -n "$LC" ]; then
      "$LC/llama-perplexity" -m "$m" -t "$THREADS" --kl-divergence-base "$W/lc-base.bin" --kl-divergence \
        >"$W/lk.log" 2>&1
      lkld=$(sed -nE 's/^Mean +KLD: +([0-9.eE+-]+).*/\1/p' "$W/lk.log")
      ldppl=$(sed -nE 's/^Mean PPL\(Q\)-PPL\(base\) *: +([0-9.eE+-]+).*/\1/p' "$W/lk.log")
    fi
    printf '| %s | %s | %.6f | %.4f | %s | %s |\n' "$recipe" "$method" "$skld" "$sdppl" "$lkld" "$ldppl"
  done
done

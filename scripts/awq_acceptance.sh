#!/usr/bin/env bash
# AWQ acceptance run: tiny-llama-kjv (F32 GGUF), calibrated on kjv-calib.txt, evaluated on
# kjv-eval.txt at ctx 256 against the F32 model. For each grid (Q4_0, Q4_K_M) it compares
#   rtn       smelt quantize without importance weights (bytes identical to llama-quantize's)
#   imatrix   llama-quantize --imatrix with llama-imatrix's matrix of the calibration text
#             (needs LLAMA_CPP_BIN; without it smelt imatrix + smelt quantize, same bytes)
#   awq       smelt awq --to gguf:RECIPE
#   gptq      smelt gptq --to gguf:RECIPE
#   awq+gptq  smelt gptq --awq --to gguf:RECIPE
# by KLD and delta-ppl in smelt's validator (smelt ppl --kld) and, with LLAMA_CPP_BIN, in
# llama-perplexity --kl-divergence. Prints a markdown table.
#
# usage: scripts/awq_acceptance.sh [F32.gguf]   (default: smelt convert of the f32 checkpoint)
#        GPTQ on the low-bit grids (issue 14): RECIPES="Q2_K Q3_K_M IQ4_NL IQ4_XS" \
#        METHODS="rtn imatrix gptq" scripts/awq_acceptance.sh
# env: LLAMA_CPP_BIN (llama.cpp's bin dir), SMELT_BIN, SMELT_ASSETS, CALIB_ARGS (the calibration
#      sampling, default "--samples 112 --seqlen 256 --in-order"), AWQ_ARGS (extra smelt awq
#      options), METHODS (default "rtn imatrix awq gptq awq+gptq"), RECIPES (default
#      "Q4_0 Q4_K_M"), THREADS, KEEP (work dir kept), WORK (a work dir to use and keep: its
#      base log-probabilities and imatrix are reused, so that runs for several recipes can share
#      them, also side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=${SMELT_BIN:-build/smelt}
ASSETS=${SMELT_ASSETS:-../shared}
CALIB=$ASSETS/text/kjv-calib.txt
EVAL=$ASSETS/text/kjv-eval.txt
THREADS=${THREADS:-$(nproc)}
CALIB_ARGS=${CALIB_ARGS:---samples 112 --seqlen 256 --in-order}
AWQ_ARGS=${AWQ_ARGS:-}
METHODS=${METHODS:-rtn imatrix awq gptq awq+gptq}
RECIPES=${RECIPES:-Q4_0 Q4_K_M}
LC=${LLAMA_CPP_BIN:-}
if [ -n "${WORK:-}" ]; then
  W=$WORK
  mkdir -p "$W"
else
  W=$(mktemp -d)
  [ -n "${KEEP:-}" ] && echo "work dir: $W" >&2 || trap 'rm -rf "$W"' EXIT
fi

F32=${1:-}
if [ -z "$F32" ]; then
  F32=$W/f32.gguf
  "$SMELT" convert "$ASSETS/models/tiny-llama-kjv/f32" --outtype f32 -o "$F32" >/dev/null
fi

json_num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }

# base log-probabilities
[ -s "$W/base.bin" ] ||
  "$SMELT" ppl "$F32" --text "$EVAL" --ctx 256 --save-logits "$W/base.bin" --json --threads "$THREADS" >"$W/base.json"
if [ -n "$LC" ]; then
  [ -s "$W/lc-base.bin" ] || "$LC/llama-perplexity" -m "$F32" -f "$EVAL" -c 256 -t "$THREADS" \
    --kl-divergence-base "$W/lc-base.bin" >"$W/lc-base.log" 2>&1
  [ -s "$W/imatrix.gguf" ] ||
    "$LC/llama-imatrix" -m "$F32" -f "$CALIB" -c 256 -t "$THREADS" --no-ppl -o "$W/imatrix.gguf" >"$W/imatrix.log" 2>&1
else
  [ -s "$W/imatrix.gguf" ] ||
    "$SMELT" imatrix "$F32" --text "$CALIB" --ctx 256 -o "$W/imatrix.gguf" --quiet --threads "$THREADS" >/dev/null
fi

echo "| grid | method | smelt KLD | smelt Δppl | llama.cpp KLD | llama.cpp Δppl | seconds |"
echo "|---|---|---:|---:|---:|---:|---:|"
for recipe in $RECIPES; do
  for method in $METHODS; do
    m=$W/$method-$recipe.gguf
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    case $method in
    rtn) "$SMELT" quantize "$F32" "$m" "$recipe" --quiet >/dev/null ;;
    imatrix)
      if [ -n "$LC" ]; then
        "$LC/llama-quantize" --imatrix "$W/imatrix.gguf" "$F32" "$m" "$recipe" "$THREADS" >"$W/q-$recipe.log" 2>&1
      else
        "$SMELT" quantize "$F32" "$m" "$recipe" --imatrix "$W/imatrix.gguf" --quiet >/dev/null
      fi ;;
    awq) "$SMELT" awq "$F32" --calib "$CALIB" $CALIB_ARGS $AWQ_ARGS --to "gguf:$recipe" -o "$m" \
           --threads "$THREADS" --quiet ;;
    gptq) "$SMELT" gptq "$F32" --calib "$CALIB" $CALIB_ARGS --to "gguf:$recipe" -o "$m" --threads "$THREADS" --quiet ;;
    awq+gptq) "$SMELT" gptq --awq "$F32" --calib "$CALIB" $CALIB_ARGS $AWQ_ARGS --to "gguf:$recipe" -o "$m" \
           --threads "$THREADS" --quiet ;;
    *) echo "unknown method $method" >&2; exit 2 ;;
    esac
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    "$SMELT" ppl "$m" --kld "$W/base.bin" --json --threads "$THREADS" >"$W/k-$method-$recipe.json"
    skld=$(json_num "$W/k-$method-$recipe.json" kld_mean)
    sdppl=$(json_num "$W/k-$method-$recipe.json" delta_ppl)
    lkld=- ldppl=-
    if [ -n "$LC" ]; then
      "$LC/llama-perplexity" -m "$m" -t "$THREADS" --kl-divergence-base "$W/lc-base.bin" --kl-divergence \
        >"$W/lk-$method-$recipe.log" 2>&1
      lkld=$(sed -nE 's/^Mean +KLD: +([0-9.eE+-]+).*/\1/p' "$W/lk-$method-$recipe.log")
      ldppl=$(sed -nE 's/^Mean PPL\(Q\)-PPL\(base\) *: +([0-9.eE+-]+).*/\1/p' "$W/lk-$method-$recipe.log")
    fi
    printf '| %s | %s | %.6f | %.4f | %s | %s | %.1f |\n' "$recipe" "$method" "$skld" "$sdppl" "$lkld" "$ldppl" "$secs"
  done
done

#!/usr/bin/env bash
# sweep_kjv.sh - the full sweep of tiny-llama-kjv behind the README's plot: 8 recipes x 3 methods
# (round to nearest, imatrix, GPTQ), timed on its own, then the same directory again with
# size-targeted mixtures added (the 24 fixed artifacts are reused, not rebuilt). Writes
# OUT/report.{html,md,json,csv} and copies the plot to docs/sweep-tiny-llama-kjv.svg.
# Usage: scripts/sweep_kjv.sh [BUILD_DIR] [OUT_DIR] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
OUT=${2:-out/sweep-kjv}
JOBS=${3:-2}
ASSETS=${SMELT_ASSETS:-/work/shared}
export OMP_WAIT_POLICY=passive
args=("$ASSETS/models/tiny-llama-kjv" --eval "$ASSETS/text/kjv-eval.txt" --calib "$ASSETS/text/kjv-calib.txt"
  --recipes Q2_K,Q3_K_S,Q3_K_M,Q4_0,Q4_K_S,Q4_K_M,Q5_K_M,Q6_K --methods rtn,imatrix,gptq --ctx 512 --samples 64
  -j "$JOBS" -o "$OUT")
t0=$(date +%s)
"$B/smelt" sweep "${args[@]}"
t1=$(date +%s)
echo "sweep_kjv: 8 recipes x 3 methods in $((t1 - t0)) s"
"$B/smelt" sweep "${args[@]}" --target-bpw 4.158,4.998
t2=$(date +%s)
echo "sweep_kjv: + 2 targets (the bpw of Q3_K_M and Q4_K_M here) x 3 methods in $((t2 - t1)) s"
cp "$OUT/plot.svg" docs/sweep-tiny-llama-kjv.svg
cat "$OUT/report.md"

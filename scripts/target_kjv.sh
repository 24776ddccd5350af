#!/usr/bin/env bash
# target_kjv.sh - the acceptance check of size-targeted mixtures on tiny-llama-kjv: at the bits
# per weight of llama.cpp's Q4_K_M and Q3_K_M, the mixture `smelt quantize --target-bpw` (or
# `smelt gptq --target-bpw`) chooses against the fixed recipe made the same way (rtn vs rtn,
# gptq vs gptq), mean KLD against the F16 base on the held-out KJV text measured twice: by
# `smelt ppl --kld` and by llama.cpp's llama-perplexity --kl-divergence (its own base logits).
# Usage: scripts/target_kjv.sh [BUILD_DIR] [OUT_DIR]   (LLAMA_CPP_BIN: llama.cpp's bin directory)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
OUT=${2:-out/target-kjv}
ASSETS=${SMELT_ASSETS:-/work/shared}
LLAMA=${LLAMA_CPP_BIN:-/work/llama.cpp/build/bin}
KJV=$ASSETS/models/tiny-llama-kjv
EVAL=$ASSETS/text/kjv-eval.txt
CALIB=$ASSETS/text/kjv-calib.txt
S=$B/smelt
export OMP_WAIT_POLICY=passive
mkdir -p "$OUT"
num() { grep -Eo "\"$1\": *-?[0-9.eE+-]+" | head -1 | sed 's/.*: *//'; }
"$S" convert "$KJV" -o "$OUT/f16.gguf" --outtype f16 -q
"$S" ppl "$OUT/f16.gguf" --text "$EVAL" --ctx 512 --save-logits "$OUT/base.logits" -q > /dev/null
have_llama=0
if [ -x "$LLAMA/llama-perplexity" ]; then
  have_llama=1
  "$LLAMA/llama-perplexity" -m "$OUT/f16.gguf" -f "$EVAL" -c 512 -t 2 --kl-divergence-base "$OUT/base.llama.kld" \
    > "$OUT/base.llama.log" 2>&1
fi
llama_kld() {
  [ $have_llama = 1 ] || { echo -; return; }
  "$LLAMA/llama-perplexity" -m "$1" --kl-divergence-base "$OUT/base.llama.kld" --kl-divergence -t 2 > "$1.llama.log" 2>&1
  # the summary's "Mean KLD", else the last per-chunk row's running mean (its 8th field): the
  # summary is sometimes missing from the log when llama.cpp's asynchronous logger is cut short
  grep -qE '^Mean +KLD:' "$1.llama.log" && { grep -E '^Mean +KLD:' "$1.llama.log" | awk '{print $3}'; return; }
  grep -E '^ +[0-9]+ +[0-9.]+ +± ' "$1.llama.log" | tail -1 | awk '{print $8}'
}
bpw_of() { "$S" inspect "$1" --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["bpw"])'; }
row() { # NAME FILE
  local j kld top
  j=$("$S" ppl "$2" --kld "$OUT/base.logits" --json -q)
  kld=$(num kld_mean <<<"$j")
  top=$(num top1_agreement <<<"$j")
  printf '| %-24s | %s | %.6f | %s | %.2f %% |\n' "$1" "$(bpw_of "$2")" "$kld" "$(llama_kld "$2")" "$(awk "BEGIN{print 100*$top}")"
}
echo "| artifact | bpw | mean KLD (smelt) | mean KLD (llama-perplexity) | same top |"
echo "|---|--:|--:|--:|--:|"
for R in Q4_K_M Q3_K_M; do
  "$S" quantize "$OUT/f16.gguf" "$OUT/$R-rtn.gguf" "$R" -q
  bpw=$(bpw_of "$OUT/$R-rtn.gguf")
  "$S" quantize "$OUT/f16.gguf" "$OUT/t$R-rtn.gguf" --target-bpw "$bpw" --calib "$CALIB" -q > "$OUT/t$R-rtn.table"
  "$S" gptq "$OUT/f16.gguf" --calib "$CALIB" --to "gguf:$R" --samples 64 --seqlen 512 -o "$OUT/$R-gptq.gguf" -q
  "$S" gptq "$OUT/f16.gguf" --calib "$CALIB" --to gguf --target-bpw "$bpw" --samples 64 --seqlen 512 \
    -o "$OUT/t$R-gptq.gguf" -q > "$OUT/t$R-gptq.table"
  for m in rtn gptq; do
    row "$R ($m)" "$OUT/$R-$m.gguf"
    row "target $bpw bpw ($m)" "$OUT/t$R-$m.gguf"
  done
done

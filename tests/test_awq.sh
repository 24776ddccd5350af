#!/usr/bin/env bash
# test_awq.sh - the `smelt awq` command and `smelt gptq --awq`:
#  1. refusals, each with its message, a non-zero exit and no output file: --device cuda without a
#     usable device (the message names CUDA), --awq-alpha outside [0, 1], a missing --calib (--to hf:
#     tests/test_awq_hf.sh);
#  2. awq into gguf:Q4_K_M from the HF directory has llama.cpp's Q4_K_M mixture (the same tensor
#     types as smelt quantize Q4_K_M writes), records quantize.method "awq", and smelt ppl
#     evaluates it; gptq --awq records "awq+gptq";
#  3. the same command twice gives the same bytes, and 1 and 2 threads give the same bytes;
#  4. with LLAMA_CPP_BIN: llama-perplexity loads and runs the AWQ GGUF.
. "$(dirname "$0")/testlib.sh"
TEXT=$ASSETS/text/kjv-calib.txt
EVAL=$ASSETS/text/kjv-eval.txt
[ -e "$KJV/config.json" ] && [ -e "$TEXT" ] || { echo "missing test assets (set SMELT_ASSETS)" >&2; exit 1; }
cd "$TMP" || exit 1
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
CAL="--calib $TEXT --samples 3 --seqlen 32"

# refuses CMD... NEEDLE: exits non-zero, says NEEDLE, writes no out.gguf
refuses() {
  local needle=${*: -1}
  rm -rf out.gguf
  "$SMELT" "${@:1:$#-1}" > log 2>&1 && { fail "$* succeeded"; return; }
  grep -qF -- "$needle" log || { fail "$*: no '$needle' in: $(cat log)"; }
  [ -e out.gguf ] && fail "$*: left out.gguf"
}
# shellcheck disable=SC2086
{
refuses awq "$KJV" $CAL --to gguf:Q4_0 -o out.gguf --device cuda "CUDA"
refuses gptq --awq "$KJV" $CAL --to gguf:Q4_0 -o out.gguf --device cuda "CUDA"
refuses awq "$KJV" $CAL --to gguf:Q4_0 -o out.gguf --awq-alpha 2 "--awq-alpha expects a number in [0, 1]"
refuses awq "$KJV" --to gguf:Q4_0 -o out.gguf "expected --calib FILE"

"$SMELT" awq "$KJV" $CAL --to gguf:Q4_K_M -o a.gguf --quiet || fail "awq exited $?"
"$SMELT" awq "$KJV" $CAL --to gguf:Q4_K_M -o b.gguf --quiet --threads 1 || fail "awq -t 1 exited $?"
cmp -s a.gguf b.gguf || fail "awq: 1 and 2 threads differ"
"$SMELT" awq "$KJV" $CAL --to gguf:Q4_K_M -o c.gguf --quiet || fail "awq (again) exited $?"
cmp -s a.gguf c.gguf || fail "awq: two runs differ"
"$SMELT" gptq --awq "$KJV" $CAL --to gguf:Q4_K_M -o g.gguf --quiet || fail "gptq --awq exited $?"
}
"$SMELT" convert "$KJV" -o f32.gguf --outtype f32 --quiet || fail "convert"
"$SMELT" quantize f32.gguf q.gguf Q4_K_M --quiet || fail "quantize"
types() { "$SMELT" inspect "$1" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted((t["name"], t["type"]) for t in d["tensors"]))'; }
ta=$(types a.gguf); [ -n "$ta" ] && [ "$ta" = "$(types q.gguf)" ] || fail "awq's tensor types differ from smelt quantize Q4_K_M's"
"$SMELT" inspect a.gguf > ia.txt 2>&1; grep -q 'quantize.method.*awq' ia.txt || fail "a.gguf: no quantize.method awq"
"$SMELT" inspect g.gguf > ig.txt 2>&1; grep -q 'quantize.method.*awq+gptq' ig.txt || fail "g.gguf: no quantize.method awq+gptq"
"$SMELT" ppl a.gguf -f "$EVAL" -c 128 --chunks 2 --quiet > /dev/null 2>&1 || fail "smelt ppl of the AWQ GGUF"
if [ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-perplexity" ]; then
  [ -n "$(llama_ppl a.gguf "$EVAL" 128 2)" ] || fail "llama-perplexity of the AWQ GGUF: $(tail -3 "$TMP/llama-ppl.log")"
else
  echo "note: LLAMA_CPP_BIN not set: llama-perplexity's part skipped" >&2
fi
[ $fails -eq 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "ok"

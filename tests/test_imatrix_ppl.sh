#!/usr/bin/env bash
# test_imatrix_ppl.sh - `smelt imatrix` estimates the perplexity as llama-imatrix does (its
# "Final estimate: PPL": the second half of each chunk scored, as llama-perplexity scores it):
#  1. the --json report's ppl / ppl_stderr / n_scored equal `smelt ppl`'s on the same text,
#     --ctx and --chunks (smelt ppl is checked against llama-perplexity in test_ppl.sh and
#     test_convert_llamacpp.sh), and the summary line carries the same PPL;
#  2. --no-ppl (llama-imatrix's flag) leaves the ppl fields out of the report and the summary,
#     and the imatrix file is byte-identical either way (the estimate does not touch the sums),
#     also with --process-output;
#  3. with LLAMA_CPP_BIN (llama.cpp's build/bin): llama-imatrix's "Final estimate: PPL" on the
#     same F32 GGUF within 0.01% (that part is skipped, with a note, without it).
. "$(dirname "$0")/testlib.sh"
TEXT=$ASSETS/text/kjv-eval.txt
need_python
need_assets "$KJV/config.json" "$TEXT"
cd "$TMP" || exit 1
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
# jget FILE KEY: a top-level field of a JSON report ("ABSENT" if missing)
jget() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], "ABSENT"))' "$1" "$2"; }

"$SMELT" convert "$KJV" -o f32.gguf --outtype f32 --quiet || { echo "convert failed" >&2; exit 1; }
for ctx in 128 96; do
  "$SMELT" imatrix f32.gguf -f "$TEXT" -c $ctx --chunks 5 -o im$ctx.gguf --json > im$ctx.json || fail "imatrix -c $ctx exited $?"
  "$SMELT" ppl f32.gguf -f "$TEXT" -c $ctx --chunks 5 --json > p$ctx.json || fail "ppl -c $ctx exited $?"
  "$PY" - im$ctx.json p$ctx.json $ctx <<'PYEOF' || fails=$((fails + 1))
import json, sys
im, p, ctx = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
bad = []
for k in ("ppl", "ppl_stderr", "n_scored"):
    if not isinstance(im.get(k), (int, float)): bad.append(f"imatrix report: {k} = {im.get(k)!r}")
if not bad:
    if abs(im["ppl"] / p["ppl"] - 1) > 1e-9: bad.append(f"ctx {ctx}: imatrix ppl {im['ppl']} != smelt ppl {p['ppl']}")
    if abs(im["ppl_stderr"] - p["ppl_stderr"]) > 1e-6 * p["ppl_stderr"]: bad.append(f"ctx {ctx}: ppl_stderr {im['ppl_stderr']} != {p['ppl_stderr']}")
    # llama.cpp's count: n_ctx - n_ctx/2 - 1 tokens per chunk
    if im["n_scored"] != 5 * (ctx - ctx // 2 - 1) or im["n_scored"] != p["n_scored"]: bad.append(f"n_scored {im['n_scored']}")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
done
ppl128=$("$PY" -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["ppl"])' p128.json)

# summary line with the PPL; --no-ppl: none, no ppl fields, the same file
"$SMELT" imatrix f32.gguf -f "$TEXT" -c 128 --chunks 5 -o s.gguf 2> s.err || fail "imatrix exited $?"
grep -Eq "^smelt imatrix: s\.gguf: gguf imatrix, 28 entries from 5 chunks x 128 tokens, PPL = $ppl128 \\+/- [0-9.]+ \\(.*\\) in [0-9.]+ s\$" s.err ||
  { fail "imatrix summary lacks PPL = $ppl128"; cat s.err >&2; }
"$SMELT" imatrix f32.gguf -f "$TEXT" -c 128 --chunks 5 -o n.gguf --no-ppl --json > n.json || fail "imatrix --no-ppl exited $?"
for k in ppl ppl_stderr n_scored; do [ "$(jget n.json $k)" = ABSENT ] || fail "imatrix --no-ppl: the report has $k"; done
"$SMELT" imatrix f32.gguf -f "$TEXT" -c 128 --chunks 5 -o n2.gguf --no-ppl 2> n.err || fail "imatrix --no-ppl exited $?"
grep -q 'PPL' n.err && fail "imatrix --no-ppl: the summary has a PPL"
cmp -s im128.gguf n.gguf || fail "the imatrix differs with --no-ppl"
"$SMELT" imatrix f32.gguf -f "$TEXT" -c 128 --chunks 3 --process-output -o po.gguf --json > po.json || fail "imatrix --process-output exited $?"
"$SMELT" imatrix f32.gguf -f "$TEXT" -c 128 --chunks 3 --process-output -o po2.gguf --no-ppl --quiet || fail "imatrix --process-output --no-ppl exited $?"
cmp -s po.gguf po2.gguf || fail "the --process-output imatrix differs with --no-ppl"
"$SMELT" ppl f32.gguf -f "$TEXT" -c 128 --chunks 3 --json > p3.json || fail "ppl --chunks 3 exited $?"
[ "$(jget po.json ppl)" = "$(jget p3.json ppl)" ] || fail "--process-output: imatrix ppl $(jget po.json ppl) != ppl $(jget p3.json ppl)"

# llama-imatrix itself
if [ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-imatrix" ]; then
  "$LLAMA_CPP_BIN/llama-imatrix" -m f32.gguf -f "$TEXT" -c 128 --chunks 5 -o l.gguf -t 2 > l.log 2>&1 || fail "llama-imatrix exited $?"
  want=$(sed -nE 's/^Final estimate: PPL = ([0-9.]+) .*/\1/p' l.log)
  got=$(jget im128.json ppl)
  awk -v a="$got" -v b="$want" 'BEGIN { exit !(b > 0 && (a / b - 1) < 1e-4 && (b / a - 1) < 1e-4) }' &&
    echo "ok   smelt imatrix PPL $got, llama-imatrix $want" || fail "smelt imatrix PPL $got vs llama-imatrix '$want'"
else
  echo "note: LLAMA_CPP_BIN not set: the llama-imatrix comparison is skipped"
fi

tl_finish test_imatrix_ppl

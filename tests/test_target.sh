#!/usr/bin/env bash
# test_target.sh - size-targeted mixtures (smelt quantize --target-bpw / --target-size) on
# tiny-llama-kjv: at the bits per weight of llama.cpp's Q4_K_M the mixture fits the budget and is
# closer to the base (mean KLD on held-out text) than Q4_K_M made the same way (round to
# nearest); --target-size keeps the file within the size; the choice is in the metadata; bad
# budgets are refused with no output; llama.cpp loads and runs the file (when LLAMA_CPP_BIN is
# set).
. "$(dirname "$0")/testlib.sh"
EVAL=$ASSETS/text/kjv-eval.txt
CALIB=$ASSETS/text/kjv-calib.txt
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "no python3" >&2; exit 77; }
for f in "$KJV/config.json" "$EVAL" "$CALIB"; do [ -e "$f" ] || { echo "missing: $f (set SMELT_ASSETS)" >&2; exit 1; }; done
export OMP_WAIT_POLICY=passive SMELT_THREADS=2 TMPDIR=$TMP
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"; }
cd "$TMP" || exit 1
PROBE=(--calib "$CALIB" --probe-ctx 256 --probe-chunks 4)

"$SMELT" convert "$KJV" -o f16.gguf --outtype f16 -q || fail "convert"
"$SMELT" quantize f16.gguf q4km.gguf Q4_K_M --json -q > q4km.json || fail "quantize Q4_K_M"
B=$(field q4km.json bpw)
"$SMELT" quantize f16.gguf mix.gguf --target-bpw "$B" "${PROBE[@]}" --json > mix.json 2> mix.err ||
  { cat mix.err >&2; fail "quantize --target-bpw $B exited $?"; }
got=$(field mix.json bpw)
"$PY" -c "import sys; sys.exit(0 if $got <= $B + 1e-9 and $got > $B - 0.25 else 1)" ||
  fail "the mixture has $got bpw for a budget of $B"
[ "$(field mix.json mixture.sensitivity)" = kld ] || fail "mixture.sensitivity"
# the table (without --json) lists every quantizable tensor: 4 blocks x 7 linears + embeddings + head
"$SMELT" quantize f16.gguf mix2.gguf --target-bpw "$B" "${PROBE[@]}" -q > table.txt || fail "table run"
n=$(grep -cE '^(blk\.|output\.weight|token_embd\.weight)' table.txt)
[ "$n" = 30 ] || fail "the table lists $n tensors, expected 30"
cmp -s mix.gguf mix2.gguf || fail "two runs with the same inputs gave different files"
# the choice is in the metadata, one type per listed tensor, and the types are those in the file
"$SMELT" inspect mix.gguf --json --all > insp.json || fail "inspect"
"$PY" - insp.json <<'PYEOF' || fail "smelt.mixture.* metadata"
import json, sys
r = json.load(open(sys.argv[1]))
md = r["metadata"]
names, types = md["smelt.mixture.tensors"], md["smelt.mixture.types"]
assert len(names) == len(types) == 30, (len(names), len(types))
inf = {t["name"]: t["type"].lower() for t in r["tensors"]}
for n, t in zip(names, types):
    assert inf[n] == t.lower(), (n, inf[n], t)
assert len(set(types)) >= 2, "a mixture of one type"
assert md["smelt.mixture.sensitivity"] == "kld"
PYEOF

# closer to the base than Q4_K_M at the same size, on text the probes did not see
"$SMELT" ppl f16.gguf --text "$EVAL" --ctx 256 --chunks 24 --save-logits base.logits -q > /dev/null || fail "base ppl"
"$SMELT" ppl q4km.gguf --kld base.logits --json -q > k1.json || fail "ppl q4km"
"$SMELT" ppl mix.gguf --kld base.logits --json -q > k2.json || fail "ppl mix"
k1=$(field k1.json kld_mean) k2=$(field k2.json kld_mean)
echo "mean KLD at $B bpw: Q4_K_M $k1, targeted mixture $k2 (bpw $got)"
"$PY" -c "import sys; sys.exit(0 if $k2 < $k1 else 1)" || fail "the mixture ($k2) is not closer than Q4_K_M ($k1)"

# --target-size: the file stays within the size
size=$(stat -c %s q4km.gguf)
"$SMELT" quantize f16.gguf sized.gguf --target-size "$size" "${PROBE[@]}" --sensitivity imatrix -q > /dev/null ||
  fail "--target-size $size exited $?"
[ "$(stat -c %s sized.gguf)" -le "$size" ] || fail "--target-size $size gave $(stat -c %s sized.gguf) bytes"

# refusals: exit status, message, no output
for args in "--target-bpw 1.0|2|bits per weight" "--target-bpw 2.0|1|below the smallest mixture" \
            "--target-size 12Q|2|expects a size" "--target-bpw 4 --target-size 3M|2|not both"; do
  IFS='|' read -r a want msg <<<"$args"
  # shellcheck disable=SC2086
  "$SMELT" quantize f16.gguf bad.gguf $a "${PROBE[@]}" -q > /dev/null 2> err.txt
  rc=$?
  [ "$rc" = "$want" ] || fail "quantize $a: exit $rc, expected $want"
  grep -q "$msg" err.txt || fail "quantize $a: message '$(cat err.txt)' lacks '$msg'"
  [ -e bad.gguf ] && fail "quantize $a left an output"
done
"$SMELT" quantize f16.gguf bad.gguf --target-bpw 4 -q 2> err.txt
[ $? = 2 ] && grep -q -- "--calib" err.txt || fail "--target-bpw without --calib"

# llama.cpp runs it, and counts the same bits per weight
LL=${LLAMA_CPP_BIN:-}
if [ -n "$LL" ] && [ -x "$LL/llama-perplexity" ]; then
  [ -n "$(llama_ppl mix.gguf "$EVAL" 256 4)" ] || { tail "$TMP/llama-ppl.log" >&2; fail "llama-perplexity gave no estimate"; }
else
  echo "LLAMA_CPP_BIN unset: llama.cpp's check skipped"
fi
echo "test_target: ok"

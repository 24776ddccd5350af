#!/usr/bin/env bash
# test_sweep.sh - smelt sweep without a browser: refusals before any work (exit 2, no output
# directory), a failing step named with its artifact and its own message (exit 1, no report),
# --keep keeping the artifacts, and the numbers of one artifact equal to those of running its
# recorded command and `smelt ppl --kld` by hand.
. "$(dirname "$0")/testlib.sh"
EVAL=$ASSETS/text/kjv-eval.txt
CALIB=$ASSETS/text/kjv-calib.txt
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "no python3" >&2; exit 77; }
for f in "$KJV/config.json" "$EVAL" "$CALIB"; do [ -e "$f" ] || { echo "missing: $f (set SMELT_ASSETS)" >&2; exit 1; }; done
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$TMP" || exit 1
"$SMELT" convert "$KJV" -o base.gguf --outtype f16 -q || fail convert

# refusals: usage errors, before anything is written
for args in "--methods rtn,awq|unknown method 'awq'" "--methods imatrix|needs --calib" \
            "--recipes Q4_K_M,Q9_K|Q9_K" "--target-bpw 4|needs --calib" "--target-bpw x --calib $CALIB|--target-bpw"; do
  IFS='|' read -r a msg <<<"$args"
  # shellcheck disable=SC2086
  "$SMELT" sweep base.gguf --eval "$EVAL" $a -o out1 -q 2> err.txt
  rc=$?
  [ "$rc" = 2 ] || fail "sweep $a: exit $rc, expected 2"
  grep -q -- "$msg" err.txt || fail "sweep $a: '$(cat err.txt)' lacks '$msg'"
  [ -e out1 ] && fail "sweep $a created its output directory"
done
mkdir m && ln -s "$KJV"/* m/ # a model directory of our own: a wrong acceptance writes nothing into the assets
"$SMELT" sweep m --eval "$EVAL" --recipes Q4_0 --ctx 64 --chunks 2 -o m/x -q 2> err.txt && fail "an output inside the model was accepted"
grep -q "m/x" err.txt || fail "the refusal does not name the output: $(cat err.txt)"
[ -e m/x ] && fail "the refused output directory was created"

# a step that fails (Q2_K_S needs an importance matrix): named, with the child's own message
"$SMELT" sweep base.gguf --eval "$EVAL" --recipes Q2_K_S --methods rtn --ctx 64 --chunks 2 -o out2 -q 2> err.txt
rc=$?
[ "$rc" = 1 ] || fail "a failing artifact: exit $rc, expected 1"
grep -q "Q2_K_S-rtn" err.txt && grep -q "importance matrix" err.txt || fail "the failure message: $(cat err.txt)"
[ -e out2/report.json ] && fail "a report was written for a failed sweep"

# --keep, and one artifact's numbers against its command run by hand
"$SMELT" sweep base.gguf --eval "$EVAL" --recipes Q4_0 --methods rtn --ctx 64 --chunks 4 --keep -o out3 --json > s.json ||
  fail "sweep --keep"
[ -s out3/Q4_0-rtn.gguf ] || fail "--keep did not keep out3/Q4_0-rtn.gguf"
cmd=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifacts"][0]["command"])' s.json)
case "$cmd" in "smelt quantize base.gguf out3/Q4_0-rtn.gguf Q4_0") ;; *) fail "recorded command: $cmd" ;; esac
"$SMELT" quantize base.gguf byhand.gguf Q4_0 -q || fail "the command by hand"
cmp -s byhand.gguf out3/Q4_0-rtn.gguf || fail "the recorded command does not reproduce the artifact"
"$SMELT" ppl base.gguf --text "$EVAL" --ctx 64 --chunks 4 --save-logits b.logits -q > /dev/null || fail "base ppl"
"$SMELT" ppl byhand.gguf --kld b.logits --json -q > k.json || fail "ppl --kld"
"$PY" - s.json k.json byhand.gguf <<'PYEOF' || fail "the sweep's numbers differ from the ones measured by hand"
import json, os, sys
a = json.load(open(sys.argv[1]))["artifacts"][0]
k = json.load(open(sys.argv[2]))
assert a["bytes"] == os.path.getsize(sys.argv[3]), (a["bytes"], os.path.getsize(sys.argv[3]))
for f in ("ppl", "ppl_stderr", "kld_mean", "kld_p99", "top1_agreement"):
    kf = {"kld_p99": "kld_p99"}.get(f, f)
    assert abs(a[f] - k[kf]) <= 1e-9 * max(1, abs(k[kf])), (f, a[f], k[kf])
PYEOF
echo "test_sweep: ok"

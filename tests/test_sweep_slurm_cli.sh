#!/usr/bin/env bash
# test_sweep_slurm_cli.sh - `smelt sweep --matrix` and `--slurm` without a cluster: stand-in
# sbatch/squeue clients (shell scripts on PATH) record what smelt runs. Checks:
#   - bad release matrices (hostile JSON, wrong types, unknown keys and recipes, duplicate
#     names, missing fields) exit 1 with a message naming the file and the field, and create
#     no output directory;
#   - sbatch gets paths full of shell metacharacters and the --slurm-opt values as single
#     arguments, unchanged, and nothing of them is run by a shell (no file appears);
#   - a submission whose earlier jobs are still queued is refused;
#   - an sbatch that never answers is killed at SMELT_SLURM_TIMEOUT, with a clear error;
#   - a failing sbatch leaves nothing queued (the jobs submitted before it are scancel'ed).
. "$(dirname "$0")/testlib.sh"
EVAL=$ASSETS/text/kjv-eval.txt
need_python
need_assets "$KJV/config.json" "$EVAL"
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
cd "$TMP" || exit 1
"$SMELT" convert "$KJV" -o base.gguf --outtype f16 -q || { fail convert; exit 1; }

# ---- bad matrices ----
bad() { # JSON | expected message (ERE)
  printf '%s' "$1" > bad.json
  "$SMELT" sweep --matrix bad.json -o out -q 2> err.txt
  local rc=$?
  [ "$rc" = 1 ] || fail "matrix '$1': exit $rc, expected 1"
  expect_grep err.txt "bad\.json: $2"
  [ -e out ] && { fail "matrix '$1' created the output directory"; rm -rf out; }
}
bad '' 'not valid JSON near byte 0'
bad '{"models": ["m"' 'not valid JSON'
bad '[1, 2]' 'expected a JSON object'
bad '{"eval": "e"}' 'no "models"'
bad '{"models": [], "eval": "e"}' 'models: expected an array of 1 to'
bad '{"models": [7], "eval": "e"}' 'models\[0\]: expected a path or an object'
bad '{"models": ["a/x", "b/x"], "eval": "e"}' "models\[0\] and models\[1\] are both named 'x'"
bad '{"models": [{"path": "m", "name": "../up"}], "eval": "e"}' 'models\[0\]\.name: expected a directory name'
bad '{"models": [{"path": "m", "nam": "x"}], "eval": "e"}' 'models\[0\]: unknown key "nam"'
bad '{"models": ["m"]}' 'no "eval"'
bad '{"models": ["m"], "eval": ""}' 'eval: expected a non-empty string'
bad '{"models": ["m"], "eval": "e", "recipes": ["Q4_0", "Q9_K"]}' "recipes\[1\]: 'Q9_K' is not a recipe smelt knows"
bad '{"models": ["m"], "eval": "e", "methods": ["awq"]}' "methods\[0\]: 'awq' is not rtn, imatrix or gptq"
bad '{"models": ["m"], "eval": "e", "methods": ["gptq"]}' 'a method other than rtn needs "calib"'
bad '{"models": ["m"], "eval": "e", "ctx": 8}' 'ctx: expected an integer in \[16, 1048576\]'
bad '{"models": ["m"], "eval": "e", "ctx": 64.5}' 'ctx: expected an integer'
bad '{"models": ["m"], "eval": "e", "target_bpw": [99]}' 'target_bpw\[0\]: expected bits per weight'
bad '{"models": ["m"], "eval": "e", "keep": "yes"}' 'keep: expected true or false'
bad '{"models": ["m"], "eval": "e", "recipe": ["Q4_0"]}' 'unknown key "recipe"'
bad '{"models": ["m"], "eval": "e", "eval": "f"}' 'the key "eval" appears twice'
"$SMELT" sweep --matrix bad.json base.gguf -o out -q 2> err.txt
[ $? = 2 ] || fail "--matrix with a MODEL too: not a usage error"
"$SMELT" sweep --matrix nosuch.json -o out -q 2> err.txt
[ $? = 1 ] && grep -q nosuch.json err.txt || fail "a missing matrix: $(cat err.txt)"

# ---- --slurm with stand-in clients ----
mkdir bin
cat > bin/sbatch << 'EOF'
#!/bin/sh
# records its argv, one argument per line; the job ids count up from 100
n=$(cat "$FAKE/n" 2>/dev/null || echo 100); n=$((n + 1)); echo $n > "$FAKE/n"
for a in "$@"; do printf '%s\n' "$a"; done > "$FAKE/sbatch.$n"
[ -e "$FAKE/sbatch_fails_at" ] && [ "$n" -ge "$(cat "$FAKE/sbatch_fails_at")" ] && { echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2; exit 1; }
[ -e "$FAKE/sbatch_hangs" ] && sleep 1000
echo "$n;cluster"
EOF
cat > bin/squeue << 'EOF'
#!/bin/sh
cat "$FAKE/queue" 2>/dev/null; exit 0
EOF
printf '#!/bin/sh\necho "$@" >> "$FAKE/scancel"\n' > bin/scancel
printf '#!/bin/sh\nexit 1\n' > bin/sacct
chmod +x bin/*
export FAKE=$TMP PATH=$TMP/bin:$PATH
weird="$TMP/m \$(touch PWNED) \`touch PWNED2\`; touch PWNED3 'q\" x"
mkdir "$weird" && cp base.gguf "$weird/base.gguf"
"$SMELT" sweep "$weird/base.gguf" --eval "$EVAL" --recipes Q4_0,Q8_0 --ctx 64 --chunks 2 -o "$weird/out" --slurm \
  --slurm-opt=--partition=gpu --slurm-opt "--comment=a b;\$(touch PWNED4)" --json > sub.json 2> err.txt ||
  { cat err.txt >&2; fail "submission exited $?"; }
[ -z "$(find "$TMP" -type f -name 'PWNED*')" ] || fail "a shell ran part of an argument"
"$PY" - "$TMP" "$weird" "$EVAL" sub.json << 'PYEOF' || fail "sbatch's arguments"
import json, os, sys
tmp, weird, ev = sys.argv[1:4]
rep = json.load(open(sys.argv[4]))
assert (rep["prepare_job"], rep["array_job"], rep["report_job"], rep["array"]) == ("101", "102", "103", "0,1"), rep
args = {n: open(f"{tmp}/sbatch.{n}").read().split("\n")[:-1] for n in (101, 102, 103)}
for n, step in ((101, "prepare"), (102, "task"), (103, "report")):
    a = args[n]
    assert "--partition=gpu" in a and "--comment=a b;$(touch PWNED4)" in a, a
    i = a.index(f"{weird}/out/slurm/run.sh")
    assert a[i + 2:i + 5] == ["sweep", f"{weird}/base.gguf", "--eval"] and a[i + 5] == ev, a
    assert a[-2:] == ["--slurm-step", step] and a[a.index("-o") + 1] == f"{weird}/out", a
assert "--array=0,1" in args[102] and "--dependency=afterok:101" in args[102], args[102]
assert "--dependency=afterany:102" in args[103], args[103]
assert open(f"{weird}/out/slurm/run.sh").read().endswith('exec "$@"\n')
PYEOF
# an earlier submission still queued: refused
echo "102_1|PENDING" > queue
"$SMELT" sweep "$weird/base.gguf" --eval "$EVAL" --recipes Q4_0,Q8_0 --ctx 64 --chunks 2 -o "$weird/out" --slurm 2> err.txt &&
  fail "a second submission while the first is queued was accepted"
expect_grep err.txt "still queued or running \(102_1\)"
"$SMELT" sweep --status "$weird/out" > st.txt || fail "--status exited $?"
expect_grep st.txt "Q8_0-rtn +pending +102_1 +PENDING"
expect_grep st.txt "2 artifacts: 0 done, 1 pending, 0 running, 1 failed"
rm queue
# an sbatch that never answers: killed at the time limit
touch sbatch_hangs
t0=$(date +%s)
SMELT_SLURM_TIMEOUT=2 timeout 60 "$SMELT" sweep base.gguf --eval "$EVAL" --recipes Q4_0 --ctx 64 --chunks 2 -o o2 --slurm 2> err.txt
rc=$?
[ "$rc" = 1 ] || fail "a hanging sbatch: exit $rc, expected 1"
[ $(($(date +%s) - t0)) -lt 30 ] || fail "a hanging sbatch was waited for $(($(date +%s) - t0)) s"
expect_grep err.txt "sbatch did not answer within 2 s"
rm sbatch_hangs
# sbatch failing at the third job: the two queued before it are cancelled
echo 0 > n
echo 3 > sbatch_fails_at
"$SMELT" sweep base.gguf --eval "$EVAL" --recipes Q4_0 --ctx 64 --chunks 2 -o o3 --slurm 2> err.txt && fail "a failing sbatch: exit 0"
expect_grep err.txt "sbatch \(the report job\) failed \(exit 1\): sbatch: error: Batch job submission failed"
[ "$(tr '\n' ' ' < scancel)" = "2 1 " ] || fail "scancel calls: $(cat scancel)"
[ -e o3/slurm/jobs.json ] && fail "a failed submission was recorded"
tl_finish test_sweep_slurm_cli

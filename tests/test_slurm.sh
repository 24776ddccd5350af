#!/usr/bin/env bash
# test_slurm.sh - `smelt sweep --slurm` on a real single-node Slurm cluster started here on
# localhost (Debian's munge, slurmctld and slurmd; a generated slurm.conf with this machine's
# CPUs and memory, non-default ports, a fresh munge key and state directory under $TMP). A
# release matrix of tiny-llama-kjv (3 artifacts: Q4_0, Q8_0, Q4_K_M with the imatrix) runs
# locally and through Slurm; checks:
#   - the first submission is held, one array task is cancelled (scancel JOB_1), the rest run:
#     the report job names the cancelled artifact (its log, report.json's `failed`) and
#     --status says failed for it and done for the others;
#   - submitting again submits only that artifact (no prepare job, array "1"), leaving the
#     others' saved results untouched;
#   - every artifact is byte-identical to the local sweep's, and the reports agree (same
#     artifacts, same sizes, bits per weight, perplexities, KLDs, top-1 agreement).
# Every wait is bounded; every daemon started here is stopped at exit (jobs cancelled first).
# Skipped (77) without the packages (SMELT_SETUP_SLURM=1 scripts/setup.sh installs them), when
# not root, or when the daemons cannot start in this environment (their logs are shown).
. "$(dirname "$0")/testlib.sh"
EVAL=$ASSETS/text/kjv-eval.txt
CALIB=$ASSETS/text/kjv-calib.txt
need_python
need_assets "$KJV/config.json" "$EVAL" "$CALIB"
for b in munged slurmctld slurmd sbatch squeue scancel scontrol sinfo; do
  command -v "$b" > /dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$b" > /dev/null ||
    skip "no $b (Debian: slurmctld slurmd munge slurm-client; SMELT_SETUP_SLURM=1 scripts/setup.sh)"
done
PATH=$PATH:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || skip "slurmd must run as root to start jobs"
export OMP_WAIT_POLICY=passive SMELT_THREADS=1

# ---- the cluster ----
C=$TMP/cluster
mkdir -p "$C"/munge "$C"/state "$C"/spool "$C"/log && chmod 700 "$C/munge"
head -c 1024 /dev/urandom > "$C/munge/munge.key" && chmod 400 "$C/munge/munge.key"
export SLURM_CONF=$C/slurm.conf
PIDS=()
stop_cluster() {
  timeout 20 scancel --me > /dev/null 2>&1
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null; done
  [ -f "$C/munge/pid" ] && kill "$(cat "$C/munge/pid")" 2> /dev/null
  for p in "${PIDS[@]}"; do # bounded: SIGKILL after 10 s
    for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.2; done
    kill -9 "$p" 2> /dev/null
  done
}
TL_ON_EXIT=stop_cluster
show_logs() { for f in "$C"/log/*; do echo "== $f" >&2; tail -n 15 "$f" >&2; done; }
cannot_start() { show_logs; skip "the cluster does not start here: $*"; }

munged -f --key-file="$C/munge/munge.key" --socket="$C/munge/sock" --pid-file="$C/munge/pid" \
  --seed-file="$C/munge/seed" --log-file="$C/log/munged.log" || cannot_start "munged exited $?"
for _ in $(seq 50); do [ -S "$C/munge/sock" ] && break; sleep 0.2; done
[ -S "$C/munge/sock" ] || cannot_start "no munge socket"
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
PORT=$((20000 + RANDOM % 20000))
cat > "$SLURM_CONF" << EOF
ClusterName=smelttest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$C/munge/sock
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=smelt Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" > "$C/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N "$HOST" -f "$SLURM_CONF" > "$C/log/slurmd.out" 2>&1 &
PIDS+=($!)
up=
for _ in $(seq 60); do
  case $(timeout 10 sinfo -h -o %T 2> /dev/null) in idle*) up=1; break ;; esac
  sleep 1
done
[ -n "$up" ] || cannot_start "the node is not idle after 60 s"

# wait_job ID: until Slurm no longer lists it as pending or running (at most 300 s)
wait_job() {
  local st
  for _ in $(seq 300); do
    st=$(timeout 10 squeue -h --states=all -j "$1" -o %T 2> /dev/null | sort -u | tr '\n' ' ')
    case $st in *PENDING* | *RUNNING* | *CONFIGURING* | *COMPLETING*) sleep 1 ;; *) return 0 ;; esac
  done
  fail "job $1 still '$st' after 300 s"
  show_logs
  exit 1
}
jget() { "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])); exec("for k in sys.argv[2:]: v = v[int(k)] if k.isdigit() else v[k]"); print("" if v is None else v)' "$@"; }

# ---- the release matrix, locally and on the cluster ----
cd "$TMP" || exit 1
cat > matrix.json << EOF
{"models": [{"path": "$KJV", "name": "kjv"}], "eval": "$EVAL", "calib": "$CALIB",
 "recipes": ["Q4_0", "Q8_0", "Q4_K_M"], "methods": ["imatrix"], "ctx": 64, "chunks": 4, "calib_chunks": 4,
 "keep": true}
EOF
# the same command in two directories (artifacts record the imatrix path they were made with)
mkdir here there
(cd here && "$SMELT" sweep --matrix ../matrix.json -o rel -q 2> ../local.err) ||
  { cat local.err >&2; fail "the local sweep exited $?"; exit 1; }
cd there || exit 1

# 1: submitted held; task 1 cancelled before it runs; the others run; the report names it
"$SMELT" sweep --matrix ../matrix.json -o rel --slurm --slurm-opt=--hold --json > sub1.json 2> sub1.err ||
  { cat sub1.err >&2; fail "the submission exited $?"; exit 1; }
PREP=$(jget sub1.json sweeps 0 prepare_job) ARR=$(jget sub1.json sweeps 0 array_job) REP=$(jget sub1.json sweeps 0 report_job)
[ -n "$PREP" ] && [ -n "$ARR" ] && [ -n "$REP" ] || { fail "job ids missing: $(cat sub1.json)"; exit 1; }
[ "$(jget sub1.json sweeps 0 array)" = "0,1,2" ] || fail "first array: $(jget sub1.json sweeps 0 array), expected 0,1,2"
timeout 20 scancel "${ARR}_1" || fail "scancel ${ARR}_1"
timeout 20 scontrol release "$PREP" "$ARR" "$REP" || fail "scontrol release"
wait_job "$REP"
LOG=rel/kjv/logs/slurm-report-$REP.out
[ -s "$LOG" ] || fail "no report job log $LOG"
expect_grep "$LOG" "1 of 3 artifacts failed \(Q8_0-imatrix\)"
[ "$(jget rel/kjv/report.json n_failed)" = 1 ] && [ "$(jget rel/kjv/report.json failed 0 name)" = Q8_0-imatrix ] ||
  fail "report.json does not name the failed artifact"
expect_grep <(jget rel/kjv/report.json failed 0 slurm) "array task ${ARR}_1"
"$SMELT" sweep --status rel/kjv --json > st1.json || fail "--status exited $?"
"$PY" - st1.json << 'PYEOF' || fail "--status after the cancelled task"
import json, sys
s = {a["name"]: a["state"] for a in json.load(open(sys.argv[1]))["artifacts"]}
assert s == {"Q4_0-imatrix": "done", "Q8_0-imatrix": "failed", "Q4_K_M-imatrix": "done"}, s
PYEOF
[ -e rel/kjv/Q8_0-imatrix.gguf ] && fail "the cancelled task left an artifact"
before=$(stat -c %Y rel/kjv/runs/Q4_0-imatrix.json rel/kjv/runs/Q4_K_M-imatrix.json rel/kjv/runs/base.json)

# 2: the same command submits only the missing artifact
"$SMELT" sweep --matrix ../matrix.json -o rel --slurm --json > sub2.json 2> sub2.err ||
  { cat sub2.err >&2; fail "the second submission exited $?"; exit 1; }
[ "$(jget sub2.json sweeps 0 n_submitted)" = 1 ] && [ "$(jget sub2.json sweeps 0 array)" = 1 ] &&
  [ -z "$(jget sub2.json sweeps 0 prepare_job)" ] || fail "the resubmission: $(cat sub2.json)"
ARR2=$(jget sub2.json sweeps 0 array_job) REP2=$(jget sub2.json sweeps 0 report_job)
wait_job "$REP2"
[ "$(ls rel/kjv/logs/slurm-"$ARR2"_*.out)" = "rel/kjv/logs/slurm-${ARR2}_1.out" ] || fail "tasks other than 1 ran"
[ "$(stat -c %Y rel/kjv/runs/Q4_0-imatrix.json rel/kjv/runs/Q4_K_M-imatrix.json rel/kjv/runs/base.json)" = "$before" ] ||
  fail "the resubmission rewrote results that were up to date"
"$SMELT" sweep --status rel/kjv > st2.txt || fail "--status exited $?"
expect_grep st2.txt "3 artifacts: 3 done"

# the artifacts and the reports against the local sweep's
for n in Q4_0-imatrix Q8_0-imatrix Q4_K_M-imatrix; do
  cmp -s "../here/rel/kjv/$n.gguf" "rel/kjv/$n.gguf" || fail "$n.gguf differs from the local sweep's"
done
cmp -s ../here/rel/kjv/base-f16.gguf rel/kjv/base-f16.gguf || fail "the base differs"
cmp -s ../here/rel/kjv/imatrix.gguf rel/kjv/imatrix.gguf || fail "the imatrix differs"
"$PY" - ../here/rel/kjv/report.json rel/kjv/report.json << 'PYEOF' || fail "the reports disagree"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert b["n_failed"] == 0 and b["failed"] == [], b["failed"]
assert a["base"]["ppl"] == b["base"]["ppl"] and a["base"]["bytes"] == b["base"]["bytes"], (a["base"], b["base"])
ra, rb = ({r["name"]: r for r in x["artifacts"]} for x in (a, b))
assert sorted(ra) == sorted(rb) and len(ra) == 3, (sorted(ra), sorted(rb))
for n in ra:
    for k in ("recipe", "method", "bytes", "n_params", "bpw", "ppl", "ppl_stderr", "delta_ppl", "kld_mean",
              "kld_p99", "top1_agreement", "on_front"):
        assert ra[n][k] == rb[n][k], (n, k, ra[n][k], rb[n][k])
PYEOF
for f in report.csv report.md plot.svg report.html; do [ -s "rel/kjv/$f" ] || fail "no $f from the report job"; done
tl_finish test_slurm

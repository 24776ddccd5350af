# testlib.sh - the preamble the shell tests (tests/test_*.sh) share. Source it first:
#   . "$(dirname "$0")/testlib.sh"
# It sets -uo pipefail (a test adds -e itself where it wants it) and
#   SRC     the source tree ($SMELT_SOURCE_DIR, else the directory above this file)
#   SMELT   the smelt binary ($SMELT_BIN, else ./smelt), made absolute so that a test may cd
#   ASSETS  the shared assets ($SMELT_ASSETS, else $SMELT_ASSETS_DEFAULT, else $SRC/../shared)
#   KJV     $ASSETS/models/tiny-llama-kjv
#   TMP     a fresh directory, removed at exit (kept with SMELT_KEEP_TMP or KEEP_TMP) after the
#           commands in TL_ON_EXIT, which a test may set (unmounting, stopping a server)
#   fails   the count fail() adds to, which tl_finish reports
set -uo pipefail
SRC=${SMELT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SMELT=${SMELT_BIN:-./smelt}
case $SMELT in /*) ;; *) SMELT=$(cd "$(dirname "$SMELT")" && pwd)/$(basename "$SMELT") ;; esac
ASSETS=${SMELT_ASSETS:-${SMELT_ASSETS_DEFAULT:-$SRC/../shared}}
KJV=$ASSETS/models/tiny-llama-kjv
TL_ON_EXIT=
TMP=$(mktemp -d)
trap 'eval "$TL_ON_EXIT"; [ -n "${SMELT_KEEP_TMP:-}${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# skip WHY: the test cannot run its check here; exit 77 (ctest: skipped), never a silent pass.
skip() { echo "SKIPPED: $*" >&2; exit 77; }

# need_assets PATH...: each must exist; a missing asset fails the test (exit 1), never skips it.
need_assets() {
  local f
  for f; do [ -e "$f" ] || { echo "missing test asset: $f (set SMELT_ASSETS)" >&2; exit 1; }; done
}

# need_python: PY, Debian's python3 (with numpy) or the one on PATH; skipped without one.
need_python() {
  PY=/usr/bin/python3
  [ -x "$PY" ] || PY=$(command -v python3) || skip "no python3"
}

# expect_grep FILE ERE: FILE matches, else a failure showing the file.
expect_grep() { grep -Eq -- "$2" "$1" || { fail "$(basename "$1") does not match: $2"; sed 's/^/    /' "$1" >&2; }; }

# json_num FILE KEY: the number after "KEY": in a one-line JSON object
json_num() { sed -E 's/.*"'"$2"'":(-?[0-9.eE+-]+).*/\1/' "$1"; }

# llama_ppl MODEL TEXT CTX CHUNKS: the "Final estimate" PPL of `$LLAMA_CPP_BIN/llama-perplexity -m
# MODEL -f TEXT -c CTX --chunks CHUNKS -t 2 $LLAMA_PPL_ARGS` on stdout, empty when no run printed
# one or it failed (its log: $TMP/llama-ppl.log). Its asynchronous log loses its last lines at
# exit in about one run in three: up to eight runs. Every llama-perplexity call of the shell
# tests goes through here.
llama_ppl() {
  local r= _
  for _ in 1 2 3 4 5 6 7 8; do
    # shellcheck disable=SC2086
    "$LLAMA_CPP_BIN/llama-perplexity" -m "$1" -f "$2" -c "$3" --chunks "$4" -t 2 ${LLAMA_PPL_ARGS:-} \
      > "$TMP/llama-ppl.log" 2>&1 || break
    r=$(sed -nE 's/.*Final estimate: PPL = ([0-9.]+).*/\1/p' "$TMP/llama-ppl.log")
    [ -n "$r" ] && break
  done
  echo "$r"
}

# tl_finish NAME: exit 1 with the failure count, else print "NAME: ok".
tl_finish() {
  [ "$fails" = 0 ] || { echo "$1: $fails failures" >&2; exit 1; }
  echo "$1: ok"
}

#!/usr/bin/env bash
# test_progress_tty.sh - the progress bar on a real terminal (a tmux pane; every byte written to
# it is logged with pipe-pane): ppl shows an ETA while it runs and llama-perplexity's running
# PPL, whose last value is the PPL it reports; with --json on stdout (a file) the bar stays on
# the terminal's stderr; gptq shows a bar over the layers besides its per-layer lines; --quiet
# shows nothing; imatrix shows llama-imatrix's running PPL. Skipped (77) without tmux.
. "$(dirname "$0")/testlib.sh"
TEXT=$ASSETS/text/kjv-eval.txt
command -v tmux >/dev/null || skip "no tmux"
need_assets "$KJV/config.json"
SOCK=smelt-test-$$
TL_ON_EXIT='tmux -L "$SOCK" kill-server 2>/dev/null'
# on_tty NAME CMD: run CMD in a fresh tmux pane (a terminal), all its output bytes in $TMP/NAME.log
on_tty() {
  local name=$1 cmd=$2
  : > "$TMP/$name.log"
  # the command starts once the pane's output is being logged
  tmux -L "$SOCK" new-session -d -s "$name" -x 200 -y 50 "while [ ! -e '$TMP/$name.go' ]; do sleep 0.05; done; cd '$TMP' && env -u SMELT_NO_PROGRESS $cmd; echo EXIT=\$? > '$TMP/$name.rc'; sleep 30"
  tmux -L "$SOCK" pipe-pane -o -t "$name" "cat >> '$TMP/$name.log'"
  touch "$TMP/$name.go"
  for _ in $(seq 1 600); do
    [ -s "$TMP/$name.rc" ] && break
    sleep 0.2
  done
  sleep 0.3
  tmux -L "$SOCK" kill-session -t "$name" 2>/dev/null
  grep -q 'EXIT=0' "$TMP/$name.rc" 2>/dev/null || { fail "$name: $cmd did not exit 0"; cat "$TMP/$name.log" >&2; }
  tr '\r' '\n' < "$TMP/$name.log" | sed 's/\x1b\[K//g' > "$TMP/$name.frames"
}
export OMP_WAIT_POLICY=passive
"$SMELT" convert "$KJV" -o "$TMP/base.gguf" --quiet || exit 1

on_tty ppl "'$SMELT' ppl base.gguf -f '$TEXT' -c 256 --chunks 8 -t 1"
grep -Eq '^perplexity +\[[#.]+\] +[0-9.]+% +[0-9.]+s +ETA [0-9.]+s +PPL [0-9.]+' "$TMP/ppl.frames" ||
  { fail "ppl: no frame with an ETA and a running PPL"; cat "$TMP/ppl.frames" >&2; }
last=$(sed -nE 's/^perplexity +\[#+\] +100\.0% .*ETA done +PPL ([0-9.]+).*/\1/p' "$TMP/ppl.frames" | tail -1)
final=$(sed -nE 's/^PPL = ([0-9.]+) .*/\1/p' "$TMP/ppl.frames")
[ -n "$last" ] && [ "$last" = "$final" ] || fail "ppl: the bar's last running PPL ($last) is not the reported PPL ($final)"

on_tty json "'$SMELT' ppl base.gguf -f '$TEXT' -c 256 --chunks 4 -t 1 --json > out.json"
grep -Eq '^perplexity +\[#+\] +100\.0% .*ETA done +PPL [0-9.]+' "$TMP/json.frames" || fail "ppl --json: no bar on the terminal"
grep -q '"command":"ppl"' "$TMP/out.json" || fail "ppl --json: no report on stdout"
grep -q '"command"' "$TMP/json.frames" && fail "ppl --json > file: the report reached the terminal"

on_tty gptq "'$SMELT' gptq base.gguf --calib '$TEXT' --to gguf:Q4_0 --samples 2 --seqlen 64 --no-loss -o g.gguf -t 1"
grep -Eq '^gptq +\[[#.]+\] +[0-9.]+% +[0-9.]+s +ETA [0-9.]+s +layer 1/4' "$TMP/gptq.frames" ||
  { fail "gptq: no layer bar with an ETA"; cat "$TMP/gptq.frames" >&2; }
grep -Eq '^gptq: layer 4/4 ' "$TMP/gptq.frames" || fail "gptq: no per-layer lines"
grep -Eq '^gptq +\[#+\] +100\.0% .*ETA done +layer 4/4' "$TMP/gptq.frames" || fail "gptq: the bar does not finish"

# imatrix shows llama-imatrix's running PPL estimate, whose last value is the summary's
on_tty imatrix "'$SMELT' imatrix base.gguf -f '$TEXT' -c 128 --chunks 8 -t 1 -o im.gguf"
grep -Eq '^imatrix +\[[#.]+\] +[0-9.]+% +[0-9.]+s +ETA [0-9.]+s +PPL [0-9.]+' "$TMP/imatrix.frames" ||
  { fail "imatrix: no frame with an ETA and a running PPL"; cat "$TMP/imatrix.frames" >&2; }
last=$(sed -nE 's/^imatrix +\[#+\] +100\.0% .*ETA done +PPL ([0-9.]+).*/\1/p' "$TMP/imatrix.frames" | tail -1)
final=$(sed -nE 's/^smelt imatrix: .*, PPL = ([0-9.]+) .*/\1/p' "$TMP/imatrix.frames")
[ -n "$last" ] && [ "$last" = "$final" ] || fail "imatrix: the bar's last running PPL ($last) is not the summary's ($final)"

on_tty quiet "'$SMELT' ppl base.gguf -f '$TEXT' -c 256 --chunks 2 -t 1 --quiet"
grep -q 'ETA' "$TMP/quiet.frames" && fail "ppl --quiet drew a bar"

tl_finish test_progress_tty

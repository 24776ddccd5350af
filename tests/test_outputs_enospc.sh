#!/usr/bin/env bash
# test_outputs_enospc.sh - a full disk (a 1 MiB tmpfs): file and directory outputs fail with a
# clear error, leave neither the output nor a temporary, and a previous output survives
# (GGUF, .smelt written by a producer and by pack, a directory).
# Needs to mount a tmpfs (root); exits 77 where it cannot.
. "$(dirname "$0")/testlib.sh"
BASE=$KJV
ADAPTER=$ASSETS/models/tiny-llama-kjv-lora-fortunes
[ -f "$BASE/model.safetensors" ] && [ -f "$ADAPTER/adapter_config.json" ] ||
  { echo "missing test assets: the shared tiny-llama-kjv model or its adapter (set SMELT_ASSETS)" >&2; exit 1; }
mkdir "$TMP/small"
mount -t tmpfs -o size=1m tmpfs "$TMP/small" 2> /dev/null || skip "cannot mount a tmpfs (needs root)"
TL_ON_EXIT='umount "$TMP/small"'
cd "$TMP" || exit 1
full() { # full NAME CMD...: CMD fails with "No space left" in its message
  local name=$1
  shift
  if "$@" > "$name.out" 2> "$name.err"; then fail "$name: exited 0 on a full disk"; return; fi
  grep -q 'No space left on device' "$name.err" || { fail "$name: the error does not say the disk is full"; sed 's/^/    /' "$name.err" >&2; }
  grep -q 'tmp\.[0-9]' "$name.err" && fail "$name: the error names a temporary: $(cat "$name.err")"
}

"$SMELT" convert "$BASE" -o a.gguf --outtype f16 --quiet || { fail "convert failed"; exit 1; }
echo previous > small/prev.gguf && chmod 600 small/prev.gguf
full quantize "$SMELT" quantize a.gguf small/prev.gguf Q8_0 --quiet
[ "$(cat small/prev.gguf)" = previous ] || fail "small/prev.gguf changed"
[ "$(stat -c %a small/prev.gguf)" = 600 ] || fail "small/prev.gguf changed mode"
full convert "$SMELT" convert "$BASE" -o small/c.gguf --quiet
[ -e small/c.gguf ] && fail "small/c.gguf exists"
full convert-smelt "$SMELT" convert "$BASE" -o small/c.smelt --quiet
[ -e small/c.smelt ] && fail "small/c.smelt exists"
full pack "$SMELT" pack a.gguf -o small/p.smelt --quiet
[ -e small/p.smelt ] && fail "small/p.smelt exists"
full merge "$SMELT" lora merge "$BASE" --adapter "$ADAPTER" -o small/merged --quiet
[ -e small/merged ] && fail "small/merged exists"
left=$(ls -A small | grep -v '^prev\.gguf$')
[ -z "$left" ] || fail "left on the full disk: $left"
[ $fails -eq 0 ] && echo "test_outputs_enospc: all passed"
exit $((fails > 0))

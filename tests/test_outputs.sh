#!/usr/bin/env bash
# test_outputs.sh - no input is ever lost: outputs that are (or lie inside) an input are
# refused before any work; directory outputs are atomic and replace only a previous output;
# a replaced file keeps its mode; temporaries go away on SIGINT/SIGTERM/SIGHUP, and a killed
# run leaves no partial output.
. "$(dirname "$0")/testlib.sh"
BASE=$KJV
ADAPTER=$ASSETS/models/tiny-llama-kjv-lora-fortunes
CALIB=$ASSETS/text/kjv-calib.txt
[ -f "$BASE/model.safetensors" ] && [ -f "$ADAPTER/adapter_config.json" ] && [ -f "$CALIB" ] ||
  { echo "missing test assets: the shared tiny-llama-kjv model, its adapter or kjv-calib.txt (set SMELT_ASSETS)" >&2; exit 1; }
cd "$TMP" || exit 1
umask 022
# refused NAME REGEX CMD...: CMD exits non-zero and its stderr matches REGEX
refused() {
  local name=$1 re=$2
  shift 2
  if "$@" > "$name.out" 2> "$name.err"; then fail "$name: exited 0"; return; fi
  grep -Eq -- "$re" "$name.err" || { fail "$name: stderr does not match: $re"; sed 's/^/    /' "$name.err" >&2; }
}
# no_temps WHERE: no temporary of ours is left in directory WHERE
no_temps() {
  local left
  left=$(find "$1" -maxdepth 2 \( -name '*.tmp.*' -o -name '*.src.*.gguf' -o -name '*.old.*' \) | head -5)
  [ -z "$left" ] || fail "${2:-}temporaries left: $left"
}
snapshot() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum; find . | sort) > "$2"; }

# a writable copy of the model (the shared one is read-only), and an F16 GGUF of it
mkdir m && cp "$BASE"/*.json "$BASE"/tokenizer.model "$BASE"/model.safetensors m/ || exit 1
# the adapter too: a smelt that lets an output land in an input must not hurt the shared copy
mkdir ad && cp "$ADAPTER"/adapter_config.json "$ADAPTER"/adapter_model.safetensors ad/ || exit 1
ADAPTER=$TMP/ad
"$SMELT" convert m -o a.gguf --outtype f16 --quiet || { fail "convert to F16 failed"; exit 1; }
cp a.gguf a.ref
snapshot m m.snap

# ---- 1. an output that is an input, or inside an input directory, is refused before any work
refused q_same 'a\.gguf: the output is the input a\.gguf' "$SMELT" quantize a.gguf a.gguf Q8_0
refused q_dotslash 'the output is the input' "$SMELT" quantize a.gguf ./a.gguf Q8_0
ln a.gguf hard.gguf
refused q_hardlink 'hard\.gguf: the output is the input a\.gguf' "$SMELT" quantize a.gguf hard.gguf Q8_0
ln -s a.gguf sym.gguf
refused q_symlink 'the output is the input' "$SMELT" quantize a.gguf sym.gguf Q8_0
refused q_imatrix 'the output is the input' "$SMELT" quantize a.gguf m/config.json Q8_0 --imatrix m/config.json
refused q_dir_in 'inside the input directory m' "$SMELT" quantize m m/model.safetensors Q8_0
refused q_lora2 'inside the input directory' "$SMELT" quantize m "$ADAPTER/merged.gguf" Q8_0 --lora "$ADAPTER"
refused c_into 'm/model\.safetensors: the output lies inside the input directory m' \
  "$SMELT" convert m -o m/model.safetensors
refused c_new_sub 'lies inside the input directory' "$SMELT" convert m -o m/new/sub/x.gguf
ln -s m mlink
refused c_via_link 'lies inside the input directory' "$SMELT" convert mlink -o m/x.gguf
cp m/tokenizer.model tok.model
refused c_tokenizer2 'the output is the input tok\.model' "$SMELT" convert m -o tok.model --tokenizer tok.model
refused l_into_base 'm: the output is the input m' "$SMELT" lora merge m --adapter "$ADAPTER" -o m
refused l_into_base_slash 'the output is the input' "$SMELT" lora merge m/ --adapter "$ADAPTER" -o m/
refused l_into_adapter 'the output is the input' "$SMELT" lora merge m --adapter "$ADAPTER" -o "$ADAPTER"
refused l_holds_base 'would replace the directory holding the input' "$SMELT" lora merge m --adapter "$ADAPTER" -o .
refused l_export 'inside the input directory' "$SMELT" lora export "$ADAPTER" --base m -o m/adapter.gguf
refused g_hf_base 'm: the output is the input m' \
  "$SMELT" gptq m --calib "$CALIB" --to hf -o m --samples 2 --seqlen 32 --quiet
refused g_gguf_in 'inside the input directory' \
  "$SMELT" gptq m --calib "$CALIB" --to gguf:Q8_0 -o m/q.gguf --samples 2 --seqlen 32 --quiet
cp "$CALIB" calib.txt
refused g_calib 'calib\.txt: the output is the input calib\.txt' \
  "$SMELT" gptq a.gguf --calib calib.txt --to gguf:Q8_0 -o calib.txt --samples 2 --seqlen 32 --quiet
refused i_text 'the output is the input calib\.txt' "$SMELT" imatrix a.gguf --text calib.txt -o calib.txt --quiet
refused i_model 'the output is the input a\.gguf' "$SMELT" imatrix a.gguf --text calib.txt -o a.gguf --quiet
refused p_save 'the output is the input calib\.txt' \
  "$SMELT" ppl a.gguf --text calib.txt --save-logits calib.txt --ctx 64 --chunks 2 --quiet
cmp -s a.gguf a.ref || fail "a.gguf changed"
cmp -s calib.txt "$CALIB" || fail "calib.txt changed"
cmp -s tok.model "$BASE/tokenizer.model" || fail "tok.model changed"
snapshot m m.snap2
cmp -s m.snap m.snap2 || fail "the model directory m changed"
no_temps . "refusals: "

# ---- 2. directory outputs: atomic, and they replace only a previous output
"$SMELT" lora merge m --adapter "$ADAPTER" -o merged --quiet || fail "lora merge into a new directory failed"
[ -f merged/model.safetensors ] && [ -f merged/config.json ] || fail "merged/ lacks its files"
[ "$(stat -c %a merged)" = 755 ] || fail "merged/ has mode $(stat -c %a merged), expected 755 (0777 & ~umask)"
snapshot merged merged.snap
# a second merge with a different weight replaces it whole (same bytes as a fresh merge elsewhere;
# a file of the previous output that the new one lacks does not survive)
echo '{}' > merged/tokenizer.json
"$SMELT" lora merge m --adapter "$ADAPTER:0.5" --dtype f32 -o merged --quiet || fail "lora merge over a previous output failed"
"$SMELT" lora merge m --adapter "$ADAPTER:0.5" --dtype f32 -o fresh --quiet || fail "lora merge into fresh/ failed"
snapshot merged merged.snap2
snapshot fresh fresh.snap
cmp -s merged.snap2 fresh.snap || fail "replacing merged/ gave other files than a fresh merge (old files mixed in?)"
cmp -s merged.snap merged.snap2 && fail "merged/ was not replaced"
no_temps . "merge: "
# an empty directory is taken
mkdir empty && "$SMELT" lora merge m --adapter "$ADAPTER" -o empty --quiet || fail "lora merge into an empty directory failed"
[ -f empty/model.safetensors ] || fail "empty/ was not filled"
# a directory holding something smelt does not write is refused before any work, untouched
mkdir mine && echo "my notes" > mine/notes.txt
refused l_foreign "mine: the directory exists and holds 'notes\.txt'" "$SMELT" lora merge m --adapter "$ADAPTER" -o mine
[ "$(ls mine)" = notes.txt ] || fail "mine/ was changed: $(ls mine)"
mkdir -p mine2/sub
refused g_foreign "holds 'sub'" "$SMELT" gptq m --calib "$CALIB" --to hf -o mine2 --samples 2 --seqlen 32 --quiet
echo x > afile
refused l_file 'afile: exists and is not a directory' "$SMELT" lora merge m --adapter "$ADAPTER" -o afile
[ "$(cat afile)" = x ] || fail "afile changed"
no_temps . "refused directories: "

# ---- 4. modes: a new file gets 0666 & ~umask; a replaced one keeps its mode
"$SMELT" quantize a.gguf new.gguf Q8_0 --quiet 2> /dev/null || fail "quantize into new.gguf failed"
[ "$(stat -c %a new.gguf)" = 644 ] || fail "new.gguf has mode $(stat -c %a new.gguf), expected 644"
echo old > kept.gguf && chmod 640 kept.gguf
"$SMELT" quantize a.gguf kept.gguf Q8_0 --quiet 2> /dev/null || fail "quantize over kept.gguf failed"
[ "$(stat -c %a kept.gguf)" = 640 ] || fail "kept.gguf has mode $(stat -c %a kept.gguf) after replacing, expected 640"
cmp -s kept.gguf new.gguf || fail "kept.gguf differs from new.gguf"
echo old > kept.imatrix && chmod 604 kept.imatrix
"$SMELT" imatrix a.gguf --text calib.txt -o kept.imatrix --chunks 1 --ctx 32 --quiet > /dev/null 2>&1 ||
  fail "imatrix over kept.imatrix failed"
[ "$(stat -c %a kept.imatrix)" = 604 ] || fail "kept.imatrix has mode $(stat -c %a kept.imatrix), expected 604"

# ---- 3. signals: the temporaries go, no partial output stays
# wait_for GLOB PID: until a path matching GLOB exists (1) or the process ended (0)
wait_for() {
  local i
  for ((i = 0; i < 600; i++)); do
    compgen -G "$1" > /dev/null && return 0
    kill -0 "$2" 2> /dev/null || return 1
    sleep 0.02
  done
  return 1
}
# interrupt SIG GLOB OUT CMD...: start CMD, send SIG once GLOB exists; then no temporaries
# and no OUT may remain
interrupt() {
  local sig=$1 glob=$2 out=$3
  shift 3
  rm -rf "$out"
  # a script's background job starts with SIGINT ignored (and smelt keeps an ignored signal
  # ignored, as nohup expects): give it the default disposition back
  if [ "$sig" = INT ]; then
    env --default-signal=INT true 2> /dev/null || { echo "note: INT case skipped (env --default-signal missing)"; return; }
    set -- env --default-signal=INT "$@"
  fi
  "$@" > /dev/null 2> "sig_$sig.err" &
  local pid=$!
  if wait_for "$glob" $pid; then
    kill -s "$sig" $pid
    wait $pid 2> /dev/null
    local rc=$?
    [ $rc -ne 0 ] || fail "$sig: the command exited 0 after the signal"
    [ -e "$out" ] && fail "$sig: $out exists after the signal"
    no_temps . "$sig ($*): "
  else
    wait $pid 2> /dev/null
    echo "note: $sig case ran to completion before $glob appeared (nothing to interrupt)"
  fi
}
G=(--calib "$CALIB" --samples 64 --seqlen 128 --threads 1 --quiet)
interrupt INT 'g.gguf.tmp.*' g.gguf "$SMELT" gptq m "${G[@]}" --to gguf:Q8_0 -o g.gguf
interrupt TERM 'g.gguf.tmp.*' g.gguf "$SMELT" gptq m "${G[@]}" --to gguf:Q8_0 -o g.gguf
interrupt HUP 'ghf.tmp.*' ghf "$SMELT" gptq m "${G[@]}" --to hf -o ghf
interrupt INT 'ghf.tmp.*/model.safetensors.tmp.*' ghf "$SMELT" gptq m "${G[@]}" --to hf -o ghf
# a previous output directory survives an interrupted replacement untouched
snapshot merged merged.before
interrupt TERM 'merged.tmp.*' merged.unused "$SMELT" lora merge m --adapter "$ADAPTER" -o merged
snapshot merged merged.after
cmp -s merged.before merged.after || fail "merged/ changed after an interrupted replacement"
# SIGKILL cannot be caught: temporaries may stay, but no partial output
rm -f k.gguf
"$SMELT" gptq m "${G[@]}" --to gguf:Q8_0 -o k.gguf > /dev/null 2>&1 &
pid=$!
if wait_for 'k.gguf.tmp.*' $pid; then
  kill -KILL $pid
  wait $pid 2> /dev/null
  [ -e k.gguf ] && fail "KILL: k.gguf exists after SIGKILL"
fi
rm -f k.gguf.* 2> /dev/null

# ---- gptq DIR --to gguf:* reads the directory in place: while it runs, nothing but OUT.tmp.*
# appears beside OUT (it used to write a full-size OUT.src.PID.gguf copy of the model first)
mkdir solo
"$SMELT" gptq m "${G[@]}" --to gguf:Q8_0 -o solo/s.gguf > /dev/null 2> solo.err &
pid=$!
stray=
while kill -0 $pid 2> /dev/null; do
  s=$(find solo -mindepth 1 ! -name s.gguf ! -name 's.gguf.tmp.*' | head -1)
  [ -n "$s" ] && stray=$s
  sleep 0.02
done
wait $pid || fail "gptq m -o solo/s.gguf failed: $(cat solo.err)"
[ -z "$stray" ] || fail "gptq DIR --to gguf wrote $stray beside its output"
[ -s solo/s.gguf ] || fail "solo/s.gguf missing"

# ---- a complete run leaves only its output
"$SMELT" gptq m --calib "$CALIB" --samples 4 --seqlen 32 --quiet --to gguf:Q8_0 -o done.gguf || fail "gptq gguf failed"
[ -s done.gguf ] || fail "done.gguf missing"
no_temps . "complete gptq: "

[ $fails -eq 0 ] && echo "test_outputs: all passed"
exit $((fails > 0))

#!/usr/bin/env bash
# test_smelt.sh - the .smelt packed format through the CLI: pack/unpack round trips (byte-
# identical, compared with cmp against the inputs) for GGUF F32/F16/BF16/Q4_K_M/Q8_0, a
# safetensors file, a model directory and a sharded one, compressed and --raw; output independent
# of the thread count; reading commands on a .smelt give the GGUF's results; a corrupted byte
# (verify names the tensor and its offset, computed here from `smelt inspect` of the GGUF),
# truncated file, wrong version, wrong kinds; no partial output on failure.
. "$(dirname "$0")/testlib.sh"
M=$KJV
TEXT=$ASSETS/text/kjv-eval.txt
need_assets "$M/model.safetensors" "$TEXT"
export SMELT_NO_SYNC=1 LC_ALL=C
# expect_exit CODE LOG CMD...: CMD exits CODE (its output in LOG)
expect_exit() { local want=$1 log=$2; shift 2; "$@" > "$log" 2>&1; local rc=$?; [ $rc -eq "$want" ] || { fail "$* exited $rc, expected $want"; sed 's/^/    /' "$log" >&2; }; }

# ---- inputs: GGUFs of every kind the issue names
for t in f32 f16 bf16; do "$SMELT" convert "$M" -o "$TMP/$t.gguf" --outtype $t -q || fail "convert $t"; done
"$SMELT" quantize "$TMP/f32.gguf" "$TMP/q4km.gguf" Q4_K_M -q || fail "quantize Q4_K_M"
"$SMELT" quantize "$TMP/f32.gguf" "$TMP/q8.gguf" Q8_0 -q || fail "quantize Q8_0"

# ---- round trips, byte for byte
for t in f32 f16 bf16 q4km q8; do
  for mode in packed raw; do
    extra=(); [ $mode = raw ] && extra=(--raw)
    expect_exit 0 "$TMP/log" "$SMELT" pack "$TMP/$t.gguf" -o "$TMP/$t.$mode.smelt" -q "${extra[@]}"
    expect_exit 0 "$TMP/log" "$SMELT" unpack "$TMP/$t.$mode.smelt" -o "$TMP/$t.$mode.back.gguf"
    cmp -s "$TMP/$t.gguf" "$TMP/$t.$mode.back.gguf" || fail "$t $mode: unpacked GGUF differs"
    expect_exit 0 "$TMP/log" "$SMELT" verify "$TMP/$t.$mode.smelt"
    expect_grep "$TMP/log" 'OK \(39 tensors'
  done
done
# compression happened (a packed BF16 is at least 30% smaller; --raw is not smaller)
bf=$(stat -c %s "$TMP/bf16.gguf"); pk=$(stat -c %s "$TMP/bf16.packed.smelt"); rw=$(stat -c %s "$TMP/bf16.raw.smelt")
[ $((pk * 100)) -le $((bf * 70)) ] || fail "bf16: packed $pk bytes of $bf: expected at least 30% saved"
[ "$rw" -ge "$bf" ] || fail "bf16 --raw: $rw bytes, smaller than the $bf-byte input"

# a safetensors file, a model directory and a sharded directory
expect_exit 0 "$TMP/log" "$SMELT" pack "$M/model.safetensors" -o "$TMP/st.smelt" -q
expect_exit 0 "$TMP/log" "$SMELT" unpack "$TMP/st.smelt" -o "$TMP/st.back"
cmp -s "$M/model.safetensors" "$TMP/st.back" || fail "safetensors: unpacked file differs"
for d in "$M" "$M/sharded"; do
  expect_exit 0 "$TMP/log" "$SMELT" pack "$d" -o "$TMP/dir.smelt" -q
  rm -rf "$TMP/dir.back"
  expect_exit 0 "$TMP/log" "$SMELT" unpack "$TMP/dir.smelt" -o "$TMP/dir.back"
  n=0
  for f in "$d"/*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cmp -s "$f" "$TMP/dir.back/$(basename "$f")" || fail "$d: $(basename "$f") differs after unpack"
  done
  [ "$(ls "$TMP/dir.back" | wc -l)" -eq $n ] || fail "$d: unpacked $(ls "$TMP/dir.back" | wc -l) files, expected $n"
  expect_exit 0 "$TMP/log" "$SMELT" verify "$TMP/dir.smelt"
done

# the bytes do not depend on the thread count
# (the same command line, which the header records, in two directories)
mkdir -p "$TMP/t1" "$TMP/t3"
(cd "$TMP/t1" && SMELT_THREADS=1 "$SMELT" pack ../bf16.gguf -o x.smelt -q --chunk-size 65536)
(cd "$TMP/t3" && SMELT_THREADS=3 "$SMELT" pack ../bf16.gguf -o x.smelt -q --chunk-size 65536)
cmp -s "$TMP/t1/x.smelt" "$TMP/t3/x.smelt" || fail "pack with 1 and 3 threads: different bytes"
SMELT_THREADS=3 "$SMELT" unpack "$TMP/t1/x.smelt" -o "$TMP/t1.gguf" -q && cmp -s "$TMP/t1.gguf" "$TMP/bf16.gguf" || fail "3-thread unpack differs"

# ---- reading commands take a .smelt as the GGUF (or safetensors file) it holds, a compressed one
# decoded in memory as it is read: TMPDIR is a plain file (no temporary file can be made there)
"$SMELT" ppl "$TMP/q4km.gguf" -f "$TEXT" -c 128 --chunks 2 > "$TMP/ppl0" 2>&1 || fail "ppl gguf"
: > "$TMP/notadir"
for mode in packed raw; do
  TMPDIR="$TMP/notadir" "$SMELT" ppl "$TMP/q4km.$mode.smelt" -f "$TEXT" -c 128 --chunks 2 > "$TMP/ppl1" 2>&1 || fail "ppl $mode .smelt"
  [ "$(grep -o 'PPL = [0-9.]* +/- [0-9.]*' "$TMP/ppl0")" = "$(grep -o 'PPL = [0-9.]* +/- [0-9.]*' "$TMP/ppl1")" ] ||
    fail "ppl of the $mode .smelt differs from the GGUF's"
done
"$SMELT" inspect "$TMP/q8.gguf" --json | sed 's/"inputs":\[[^]]*\]//; s/"path":"[^"]*"//; s/"file_bytes":[0-9]*//' > "$TMP/i0"
"$SMELT" inspect "$TMP/q8.packed.smelt" --json | sed 's/"inputs":\[[^]]*\]//; s/"path":"[^"]*"//; s/"file_bytes":[0-9]*//' > "$TMP/i1"
cmp -s "$TMP/i0" "$TMP/i1" || fail "inspect --json of a .smelt differs from the GGUF's"
"$SMELT" ppl "$TMP/bf16.gguf" -f "$TEXT" -c 128 --chunks 2 > "$TMP/ppl0" 2>&1 || fail "ppl bf16 gguf"
TMPDIR="$TMP/notadir" SMELT_DECODE_CACHE_MB=0 "$SMELT" ppl "$TMP/bf16.packed.smelt" -f "$TEXT" -c 128 --chunks 2 > "$TMP/ppl1" 2>&1 || fail "ppl bf16 .smelt"
[ "$(grep -o 'PPL = [0-9.]* +/- [0-9.]*' "$TMP/ppl0")" = "$(grep -o 'PPL = [0-9.]* +/- [0-9.]*' "$TMP/ppl1")" ] ||
  fail "ppl of the bf16 .smelt (smallest decode cache) differs from the GGUF's"
TMPDIR="$TMP/notadir" "$SMELT" quantize "$TMP/bf16.packed.smelt" "$TMP/fromsmelt.gguf" Q8_0 -q || fail "quantize from a .smelt"
"$SMELT" quantize "$TMP/bf16.gguf" "$TMP/fromgguf.gguf" Q8_0 -q
cmp -s "$TMP/fromsmelt.gguf" "$TMP/fromgguf.gguf" || fail "quantize from a .smelt: different bytes"
expect_exit 0 "$TMP/log" "$SMELT" inspect "$TMP/st.smelt"
expect_grep "$TMP/log" '39 tensors, 4196608 parameters'

# ---- producing commands write a .smelt when the output is named *.smelt (the tensor sink's
# .smelt format): it unpacks to exactly the GGUF the same command writes
"$SMELT" convert "$M" -o "$TMP/conv.smelt" --outtype bf16 -q || fail "convert -o X.smelt"
"$SMELT" unpack "$TMP/conv.smelt" -o "$TMP/conv.gguf" -q && cmp -s "$TMP/conv.gguf" "$TMP/bf16.gguf" ||
  fail "convert -o X.smelt: unpacks to a different GGUF"
"$SMELT" quantize "$TMP/bf16.gguf" "$TMP/qs.smelt" Q8_0 -q || fail "quantize to X.smelt"
"$SMELT" unpack "$TMP/qs.smelt" -o "$TMP/qs.gguf" -q && cmp -s "$TMP/qs.gguf" "$TMP/fromgguf.gguf" ||
  fail "quantize to X.smelt: unpacks to a different GGUF"
# --raw / --level N on a producer (its bytes equal pack's: test_smelt.c); refused for a GGUF output
"$SMELT" quantize "$TMP/bf16.gguf" "$TMP/qr.smelt" Q8_0 -q --raw || fail "quantize to X.smelt --raw"
"$SMELT" unpack "$TMP/qr.smelt" -o "$TMP/qr.gguf" -q && cmp -s "$TMP/qr.gguf" "$TMP/fromgguf.gguf" || fail "quantize --raw: unpacks to a different GGUF"
[ "$(stat -c %s "$TMP/qr.smelt")" -gt "$(stat -c %s "$TMP/fromgguf.gguf")" ] || fail "quantize --raw: not stored raw"
"$SMELT" convert "$M" -o "$TMP/c19.smelt" --outtype bf16 -q --level 19 || fail "convert --level 19"
"$SMELT" unpack "$TMP/c19.smelt" -o "$TMP/c19.gguf" -q && cmp -s "$TMP/c19.gguf" "$TMP/bf16.gguf" || fail "convert --level 19: unpacks to a different GGUF"
cmp -s "$TMP/c19.smelt" "$TMP/conv.smelt" && fail "convert --level 19 wrote the default level's bytes"
expect_exit 1 "$TMP/log" "$SMELT" quantize "$TMP/bf16.gguf" "$TMP/qx.gguf" Q8_0 -q --raw
expect_grep "$TMP/log" "qx\.gguf: --level / --raw apply to a \.smelt output only"
expect_exit 2 "$TMP/log" "$SMELT" convert "$M" -o "$TMP/cx.smelt" -q --raw --level 3
[ ! -e "$TMP/qx.gguf" ] && [ ! -e "$TMP/cx.smelt" ] || fail "a refused --raw/--level left output"
[ -z "$(ls "$TMP" | grep 'tmp')" ] || fail "temporaries left: $(ls "$TMP" | grep tmp)"

# ---- a corrupted byte inside a tensor of a raw .smelt: the file starts at 4096 in the .smelt,
# so blk.1.ffn_down.weight lies at 4096 + its GGUF offset (from inspect of the GGUF)
off=$("$SMELT" inspect "$TMP/bf16.gguf" | awk '$1 == "blk.1.ffn_down.weight" {print $NF}')
[ -n "$off" ] || fail "no offset for blk.1.ffn_down.weight in inspect's table"
at=$((4096 + off))
cp "$TMP/bf16.raw.smelt" "$TMP/bad.smelt"
printf '\x5a' | dd of="$TMP/bad.smelt" bs=1 seek=$((at + 1000)) conv=notrunc status=none
expect_exit 1 "$TMP/log" "$SMELT" verify "$TMP/bad.smelt"
expect_grep "$TMP/log" "tensor 'blk\.1\.ffn_down\.weight' of file 'bf16\.gguf' \(stored at offset $at, [0-9]+ bytes\): checksum mismatch"
for cmd in "inspect" "ppl -f $TEXT -c 128 --chunks 1"; do
  expect_exit 1 "$TMP/log" "$SMELT" $cmd "$TMP/bad.smelt"
  expect_grep "$TMP/log" "blk\.1\.ffn_down\.weight.*checksum mismatch"
done
expect_exit 1 "$TMP/log" "$SMELT" unpack "$TMP/bad.smelt" -o "$TMP/bad.gguf"
[ ! -e "$TMP/bad.gguf" ] && [ -z "$(ls "$TMP" | grep '\.tmp\.')" ] || fail "failed unpack left output behind"
# a corrupted byte in a compressed .smelt: some tensor (or chunk) is named with its offset
cp "$TMP/bf16.packed.smelt" "$TMP/badp.smelt"
printf '\x5a' | dd of="$TMP/badp.smelt" bs=1 seek=3000000 conv=notrunc status=none
expect_exit 1 "$TMP/log" "$SMELT" verify "$TMP/badp.smelt"
expect_grep "$TMP/log" "tensor '[a-z0-9_.]+' of file 'bf16\.gguf'.* offset [0-9]+"
expect_exit 1 "$TMP/log" "$SMELT" ppl "$TMP/badp.smelt" -f "$TEXT" -c 128 --chunks 1

# ---- truncated, wrong version, wrong kind
head -c 3000000 "$TMP/bf16.packed.smelt" > "$TMP/cut.smelt"
for cmd in verify inspect; do
  expect_exit 1 "$TMP/log" "$SMELT" $cmd "$TMP/cut.smelt"
  expect_grep "$TMP/log" "cut\.smelt: offset [0-9]+: no trailer .*truncated"
done
cp "$TMP/bf16.packed.smelt" "$TMP/v2.smelt"
printf '\x02' | dd of="$TMP/v2.smelt" bs=1 seek=8 conv=notrunc status=none
expect_exit 1 "$TMP/log" "$SMELT" verify "$TMP/v2.smelt"
expect_grep "$TMP/log" "v2\.smelt: offset 8: format version 2\.0; this smelt reads version 1\.x"
expect_exit 1 "$TMP/log" "$SMELT" verify "$TMP/bf16.gguf"
expect_grep "$TMP/log" "bf16\.gguf: not a \.smelt file"
expect_exit 1 "$TMP/log" "$SMELT" unpack "$TMP/bf16.gguf" -o "$TMP/x"
expect_grep "$TMP/log" "bf16\.gguf: offset 0: not a \.smelt file"
expect_exit 1 "$TMP/log" "$SMELT" pack "$TMP/bf16.raw.smelt" -o "$TMP/y.smelt"
expect_grep "$TMP/log" "already a \.smelt"
[ ! -e "$TMP/x" ] && [ ! -e "$TMP/y.smelt" ] || fail "failed commands left output behind"
expect_exit 1 "$TMP/log" "$SMELT" ppl "$TMP/dir.smelt" -f "$TEXT" -c 128 --chunks 1
expect_grep "$TMP/log" "dir\.smelt: this is a \.smelt of a model directory"
expect_exit 2 "$TMP/log" "$SMELT" pack "$TMP/bf16.gguf"
mkdir -p "$TMP/empty"
expect_exit 1 "$TMP/log" "$SMELT" pack "$TMP/empty" -o "$TMP/e.smelt"
expect_grep "$TMP/log" "empty: the directory holds no files to pack"

[ $fails -eq 0 ] && echo "test_smelt: all passed" || { echo "test_smelt: $fails failures" >&2; exit 1; }

#!/usr/bin/env bash
# test_inspect.sh - `smelt inspect` on GGUF files (our writer's fuzz seeds and a file built
# byte by byte below), on the shared checkpoints (numbers from ../shared/models/README.md),
# its JSON output, --all, and its errors.
. "$(dirname "$0")/testlib.sh"
SEEDS=$SRC/tests/fuzz-seeds/gguf
M=$KJV
# expect_grep FILE REGEX: the output file matches the extended regex

# ---- a GGUF built by hand: no tensors; "tok" = 10 strings t0..t9, "ids" = u32 0..19
export LC_ALL=C
le() { local v=$1 n=$2 i; for ((i = 0; i < n; i++)); do printf "\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; }
str() { le ${#1} 8; printf '%s' "$1"; }
{
  printf 'GGUF'; le 3 4; le 0 8; le 2 8
  str tok; le 9 4; le 8 4; le 10 8
  for i in 0 1 2 3 4 5 6 7 8 9; do str "t$i"; done
  str ids; le 9 4; le 4 4; le 20 8
  for ((i = 0; i < 20; i++)); do le $i 4; done
} > "$TMP/arrays.gguf"

# ---- text output of the tiny file: a=u32 7, s="hi", tensor t f32 [2]
"$SMELT" inspect "$SEEDS/tiny.gguf" > "$TMP/tiny.txt" 2>&1 || fail "inspect tiny.gguf exited $?"
expect_grep "$TMP/tiny.txt" '^format: +GGUF v3, alignment 32, tensor data at offset 128$'
expect_grep "$TMP/tiny.txt" '^ +a +u32 +7$'
expect_grep "$TMP/tiny.txt" '^ +s +str +"hi"$'
expect_grep "$TMP/tiny.txt" '^ +t +f32 +\[2\] +8 +32\.0000 +128$'  # bpw 8*8/2, data at the data section's start
expect_grep "$TMP/tiny.txt" '1 tensors, 2 parameters .*, 8 bytes .*, 32\.0000 bits per weight'

# ---- JSON of the tiny file, computed by hand from its contents
"$SMELT" inspect "$SEEDS/tiny.gguf" --json > "$TMP/tiny.json" 2>&1 || fail "inspect --json exited $?"
ver=$("$SMELT" --version | head -1 | cut -d' ' -f2)
want='{"schema_version":1,"command":"inspect","smelt_version":"'$ver'","inputs":["'$SEEDS'/tiny.gguf"],"output":null,"path":"'$SEEDS'/tiny.gguf","file_bytes":'$(stat -c %s "$SEEDS/tiny.gguf")',"format":"gguf","version":3,"alignment":32,"data_offset":128,"file_type":null,"file_type_name":null,"metadata":{"a":7,"s":"hi"},"n_tensors_in_file":1,"tensors":[{"name":"t","shape":[2],"type":"f32","bytes":8,"bpw":32,"offset":128}],"n_tensors":1,"n_params":2,"bytes":8,"bpw":32,"bytes_out":0}'
[ "$(cat "$TMP/tiny.json")" = "$want" ] || fail "tiny.json: got $(cat "$TMP/tiny.json"), expected $want"

# ---- the rich seed: every value type, 7 tensors (params 15+8+128+768+24+6+512, bytes by ggml block sizes)
"$SMELT" inspect "$SEEDS/rich.gguf" > "$TMP/rich.txt" 2>&1 || fail "inspect rich.gguf exited $?"
expect_grep "$TMP/rich.txt" 'alignment 64'
expect_grep "$TMP/rich.txt" '^ +v\.i64 +i64 +-9223372036854775808$'
expect_grep "$TMP/rich.txt" '^ +v\.f32 +f32 +0\.1$'
expect_grep "$TMP/rich.txt" '^ +a\.nested +arr\[3\] +\[i32\[2\] \[1, 2\], i32\[0\] \[\], i32\[1\] \[3\]\]$'
expect_grep "$TMP/rich.txt" '^ +w\.q8_0 +q8_0 +\[2, 64\] +136 +8\.5000 +[0-9]+$'
expect_grep "$TMP/rich.txt" '^ +w\.q4_K +q4_K +\[3, 256\] +432 +4\.5000 +[0-9]+$'
expect_grep "$TMP/rich.txt" '^ +w\.4d +bf16 +\[1, 2, 1, 3\] +12 +16\.0000 +[0-9]+$'
expect_grep "$TMP/rich.txt" '7 tensors, 1461 parameters .*, 1172 bytes .*, 6\.4175 bits per weight'

# ---- arrays: summarized by default, in full with --all
"$SMELT" inspect "$TMP/arrays.gguf" > "$TMP/arrays.txt" 2>&1 || fail "inspect arrays.gguf exited $?"
expect_grep "$TMP/arrays.txt" '^ +tok +str\[10\] +\["t0", "t1", "t2", "t3", "t4", "t5", \.\.\. 4 more\]$'
expect_grep "$TMP/arrays.txt" '^ +ids +u32\[20\] +\[0, 1, 2, 3, 4, 5, \.\.\. 14 more\]$'
expect_grep "$TMP/arrays.txt" '0 tensors, 0 parameters'
"$SMELT" inspect "$TMP/arrays.gguf" --all > "$TMP/arrays_all.txt" 2>&1 || fail "inspect --all exited $?"
expect_grep "$TMP/arrays_all.txt" '^ +tok +str\[10\] +\["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"\]$'
expect_grep "$TMP/arrays_all.txt" '^ +ids +u32\[20\] +\[0, 1, 2, .*, 18, 19\]$'
"$SMELT" inspect --json "$TMP/arrays.gguf" > "$TMP/arrays.json" 2>&1 || fail "inspect --json arrays exited $?"
expect_grep "$TMP/arrays.json" '"tok":\{"type":"str","n":10,"first":\["t0","t1","t2","t3","t4","t5","t6","t7"\]\}'
expect_grep "$TMP/arrays.json" '"ids":\{"type":"u32","n":20,"first":\[0,1,2,3,4,5,6,7\]\}'
"$SMELT" inspect --json --all "$TMP/arrays.gguf" > "$TMP/arrays_all.json" 2>&1 || fail "inspect --json --all exited $?"
expect_grep "$TMP/arrays_all.json" '"tok":\["t0","t1","t2","t3","t4","t5","t6","t7","t8","t9"\]'
expect_grep "$TMP/arrays_all.json" '"ids":\[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19\]'

# ---- checkpoints: tiny-llama-kjv has 39 tensors, 4,196,608 parameters (BF16 and F32 variants)
[ -d "$M" ] || fail "missing test asset: $M (set SMELT_ASSETS)"
"$SMELT" inspect "$M" > "$TMP/kjv.txt" 2>&1 || fail "inspect $M exited $?"
expect_grep "$TMP/kjv.txt" '^format: +safetensors$'
expect_grep "$TMP/kjv.txt" '^ +format +"pt"$'
expect_grep "$TMP/kjv.txt" '^ +model_type +"llama"$'
expect_grep "$TMP/kjv.txt" '^ +num_key_value_heads +4$'
expect_grep "$TMP/kjv.txt" '^ +model\.layers\.0\.mlp\.down_proj\.weight +bf16 +\[256, 768\] +393216 +16\.0000$'
expect_grep "$TMP/kjv.txt" '39 tensors, 4196608 parameters .*, 8393216 bytes .*, 16\.0000 bits per weight'
"$SMELT" inspect "$M/f32/model.safetensors" --json > "$TMP/kjv_f32.json" 2>&1 || fail "inspect f32 --json exited $?"
expect_grep "$TMP/kjv_f32.json" '^\{"schema_version":1,"command":"inspect",.*"format":"safetensors",.*"metadata":\{"format":"pt"\},"config":\{.*"torch_dtype":"float32".*\}'
expect_grep "$TMP/kjv_f32.json" '\{"name":"model\.norm\.weight","shape":\[256\],"type":"f32","bytes":1024,"bpw":32,"offset":null\}'
expect_grep "$TMP/kjv_f32.json" '"n_tensors":39,"n_params":4196608,"bytes":16786432,"bpw":32,"bytes_out":0\}$'
for p in "$M/sharded" "$M/sharded/model.safetensors.index.json"; do
  "$SMELT" inspect "$p" > "$TMP/sharded.txt" 2>&1 || fail "inspect $p exited $?"
  expect_grep "$TMP/sharded.txt" '39 tensors, 4196608 parameters .*, 8393216 bytes'
done
# the LoRA adapter: 56 F32 tensors, 155,648 parameters
"$SMELT" inspect "$ASSETS/models/tiny-llama-kjv-lora-fortunes/adapter_model.safetensors" > "$TMP/lora.txt" 2>&1 ||
  fail "inspect adapter exited $?"
expect_grep "$TMP/lora.txt" '56 tensors, 155648 parameters .*, 622592 bytes .*, 32\.0000 bits per weight'
# llama2.c: stories260K has 260,032 parameters (SOURCE.md), 1 + 5 x 9 + 1 tensors
S=$ASSETS/models/stories260k/stories260K.bin
"$SMELT" inspect "$S" > "$TMP/l2c.txt" 2>&1 || fail "inspect $S exited $?"
expect_grep "$TMP/l2c.txt" '^format: +llama2c$'
expect_grep "$TMP/l2c.txt" '^ +n_kv_heads +4$'
expect_grep "$TMP/l2c.txt" '^ +blk\.4\.ffn_down\.weight +f32 +\[64, 172\] +44032 +32\.0000$'
expect_grep "$TMP/l2c.txt" '47 tensors, 260032 parameters .*, 1040128 bytes .*, 32\.0000 bits per weight'
# PyTorch
"$SMELT" inspect "$M/pytorch" > "$TMP/pt.txt" 2>&1 || fail "inspect $M/pytorch exited $?"
expect_grep "$TMP/pt.txt" '^format: +pytorch$'
expect_grep "$TMP/pt.txt" '39 tensors, 4196608 parameters .*, 16786432 bytes .*, 32\.0000 bits per weight'

# ---- errors: exit 1 with a message naming the file; usage errors exit 2
head -c 100 "$SEEDS/tiny.gguf" > "$TMP/cut.gguf"
"$SMELT" inspect "$TMP/cut.gguf" > "$TMP/cut.txt" 2>&1
[ $? -eq 1 ] || fail "truncated GGUF: expected exit 1"
expect_grep "$TMP/cut.txt" "cut\.gguf: offset [0-9]+: expected"
"$SMELT" inspect "$TMP/missing.gguf" > "$TMP/missing.txt" 2>&1
[ $? -eq 1 ] || fail "missing file: expected exit 1"
expect_grep "$TMP/missing.txt" 'missing\.gguf: no such file'
"$SMELT" inspect "$TMP" > "$TMP/emptydir.txt" 2>&1
[ $? -eq 1 ] || fail "directory without a checkpoint: expected exit 1"
expect_grep "$TMP/emptydir.txt" 'no checkpoint found'
"$SMELT" inspect > "$TMP/noarg.txt" 2>&1
[ $? -eq 2 ] || fail "no PATH: expected exit 2"
"$SMELT" inspect "$SEEDS/tiny.gguf" --bogus > /dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option: expected exit 2"

[ $fails -eq 0 ] && echo "test_inspect: all passed" || { echo "test_inspect: $fails failures" >&2; exit 1; }

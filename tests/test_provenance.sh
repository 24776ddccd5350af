#!/usr/bin/env bash
# test_provenance.sh - a GGUF written by `smelt gptq` records how it was made (quantize.method,
# quantize.smelt_version, quantize.gptq.*: calibration file and its xxHash64, samples, seqlen,
# sampling, seed, damp, act-order, group, ...), `smelt inspect` shows them (text and JSON), and
# the hash is the calibration file's xxHash64 computed here by an independent implementation
# (python, checked against the published test vector of the empty input); files not made by
# gptq carry none of these keys. And `smelt convert` of an HF GPTQ directory reports the
# types it wrote (q4_0 for the 4-bit group-32 linears), not the --outtype of the rest. And
# `smelt gptq --to hf` records the same facts in config.json's quantization_config.smelt,
# which `smelt inspect DIR` shows.
. "$(dirname "$0")/testlib.sh"
need_python
need_assets "$KJV/config.json" "$ASSETS/text/kjv-calib.txt"
cd "$TMP" || exit 1
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
head -c 60000 "$ASSETS/text/kjv-calib.txt" > calib.txt
"$SMELT" convert "$KJV" -o base.gguf --quiet || { echo "convert failed" >&2; exit 1; }
"$SMELT" gptq base.gguf --calib calib.txt --to gguf:Q4_0 --samples 3 --seqlen 32 --seed 7 --damp 0.05 --no-loss \
  -o g.gguf --quiet || fail "gptq exited $?"
"$SMELT" inspect g.gguf > g.txt || fail "inspect exited $?"
"$SMELT" inspect g.gguf --json > g.json || fail "inspect --json exited $?"
"$SMELT" inspect base.gguf --json > base.json || fail "inspect --json exited $?"
grep -Eq '^ +quantize\.gptq\.calib_file +str +"calib\.txt"$' g.txt || fail "inspect does not show quantize.gptq.calib_file"
grep -Eq '^file type: 2 \(Q4_0\)$' g.txt || fail "inspect does not decode general.file_type 2 as Q4_0"
"$PY" - g.json base.json calib.txt "$("$SMELT" --version | head -1 | cut -d' ' -f2)" <<'PYEOF' || fails=$((fails + 1))
import json, sys
M = (1 << 64) - 1
P1, P2, P3, P4, P5 = 11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579, 2870177450012600261
rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
def rnd(acc, v): return (rotl((acc + v * P2) & M, 31) * P1) & M
def merge(h, v): return (((h ^ rnd(0, v)) * P1) + P4) & M
def xxh64(d, seed=0):
    n, i = len(d), 0
    u64 = lambda i: int.from_bytes(d[i:i + 8], "little")
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            v = [rnd(v[k], u64(i + 8 * k)) for k in range(4)]
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for x in v: h = merge(h, x)
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, u64(i)), 27) * P1 + P4) & M; i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(d[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M; i += 4
    while i < n:
        h = (rotl(h ^ (d[i] * P5 & M), 11) * P1) & M; i += 1
    h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
    return h
assert xxh64(b"") == 0xEF46DB3751D8E999, "the reference xxh64 is wrong"
g, base = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
md = g["metadata"]
want = {
    "quantize.method": "gptq", "quantize.smelt_version": sys.argv[4], "quantize.gptq.calib_file": sys.argv[3],
    "quantize.gptq.calib_xxh64": "%016x" % xxh64(open(sys.argv[3], "rb").read()),
    "quantize.gptq.samples": 3, "quantize.gptq.seqlen": 32, "quantize.gptq.seed": 7, "quantize.gptq.sampling": "random",
    "quantize.gptq.act_order": False, "quantize.gptq.group_size": 128, "quantize.gptq.true_sequential": True,
}
bad = [f"{k} = {md.get(k)!r}, expected {v!r}" for k, v in want.items() if md.get(k) != v]
if abs(md.get("quantize.gptq.damp", 0) - 0.05) > 1e-6: bad.append(f"damp {md.get('quantize.gptq.damp')}")
if g.get("file_type") != 2 or g.get("file_type_name") != "Q4_0": bad.append(f"file_type {g.get('file_type')} {g.get('file_type_name')}")
if any(k.startswith("quantize.") for k in base["metadata"]): bad.append("a converted file carries quantize.* keys")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

# ---- HF GPTQ -> GGUF: the summary and the report give the types written
"$SMELT" gptq "$KJV" --calib calib.txt --to hf --group 32 --samples 2 --seqlen 32 --no-loss -o hfq --quiet || fail "gptq --to hf exited $?"
# ---- the HF GPTQ checkpoint carries the same facts, as quantization_config's "smelt" object
# (the standard keys unchanged: loaders ignore keys they do not know), and inspect DIR shows them
"$SMELT" inspect hfq > hfq.txt || fail "inspect DIR exited $?"
"$SMELT" inspect hfq --json > hfq.json || fail "inspect DIR --json exited $?"
grep -Eq '^ +quantization_config\.smelt\.calib_file +"calib\.txt"$' hfq.txt ||
  { fail "inspect DIR does not show quantization_config.smelt.calib_file"; cat hfq.txt >&2; }
grep -Eq '^ +quantization_config\.bits +4$' hfq.txt || fail "inspect DIR does not show quantization_config.bits"
"$PY" - hfq/config.json hfq.json calib.txt "$("$SMELT" --version | head -1 | cut -d' ' -f2)" \
  "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["quantize.gptq.calib_xxh64"])' g.json)" <<'PYEOF' || fails=$((fails + 1))
import json, sys
cfg, ins = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
qc = cfg["quantization_config"]
bad = []
std = {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "quant_method": "gptq", "checkpoint_format": "gptq"}
bad += [f"quantization_config.{k} = {qc.get(k)!r}, expected {v!r}" for k, v in std.items() if qc.get(k) != v]
p = qc.get("smelt", {})
# the same calibration file as the GGUF run above: the hash the GGUF test checked independently
want = {"method": "gptq", "smelt_version": sys.argv[4], "calib_file": sys.argv[3], "calib_xxh64": sys.argv[5],
        "samples": 2, "seqlen": 32, "sampling": "random", "seed": 0, "act_order": False, "group_size": 32,
        "true_sequential": True}
if not isinstance(p.get("importance"), bool): bad.append(f"smelt.importance {p.get('importance')!r}")
bad += [f"smelt.{k} = {p.get(k)!r}, expected {v!r}" for k, v in want.items() if p.get(k) != v]
if not isinstance(p.get("damp"), (int, float)) or abs(p["damp"] - qc.get("damp_percent", -1)) > 1e-9:
    bad.append(f"smelt.damp {p.get('damp')!r} != damp_percent {qc.get('damp_percent')!r}")
if not isinstance(p.get("block_size"), int) or p["block_size"] <= 0: bad.append(f"smelt.block_size {p.get('block_size')!r}")
if ins.get("config", {}).get("quantization_config", {}).get("smelt") != p: bad.append("inspect DIR --json: config.quantization_config.smelt differs from config.json")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
"$SMELT" convert hfq -o hfq.gguf 2> conv.txt || fail "convert of the GPTQ directory exited $?"
grep -Eq '^smelt convert: hfq\.gguf: 39 tensors, .*q4_0 x28.* in [0-9.]+ s$' conv.txt ||
  { fail "convert's summary does not give q4_0 x28"; cat conv.txt >&2; }
"$SMELT" convert hfq -o hfq.gguf --json > conv.json || fail "convert --json exited $?"
grep -q '"tensor_types":{[^}]*"q4_0":28' conv.json || { fail "convert --json: tensor_types lacks q4_0: 28"; cat conv.json >&2; }
"$SMELT" inspect hfq.gguf --filter 'attn_q' > filt.txt || fail "inspect --filter exited $?"
grep -Eq '^tensors: +4 of 39 match the filter' filt.txt || { fail "inspect --filter attn_q: expected 4 of 39"; cat filt.txt >&2; }

tl_finish test_provenance

#!/usr/bin/env bash
# test_inspect_diff.sh - `smelt inspect A B --diff`: a file against itself differs nowhere; a
# BF16 conversion against its Q8_0 quantization: general.file_type changed, the 30 quantized
# weights changed and the 9 norms the same, and each changed tensor's max |a - b| after
# dequantization equals the one computed here by an independent reader (python: GGUF parsing,
# bf16 and q8_0 decoding). --filter limits the tensors; --json carries the same numbers.
. "$(dirname "$0")/testlib.sh"
need_python
need_assets "$KJV/config.json"
cd "$TMP" || exit 1
"$SMELT" convert "$KJV" -o a.gguf --quiet && "$SMELT" quantize a.gguf b.gguf Q8_0 --quiet || exit 1

"$SMELT" inspect a.gguf a.gguf --diff > self.txt || fail "diff of a file with itself exited $?"
grep -Eq '^summary: +39 tensors the same, 0 changed, 0 only in A, 0 only in B; 0 metadata differences$' self.txt ||
  { fail "a file against itself"; cat self.txt >&2; }
"$SMELT" inspect a.gguf b.gguf --diff > ab.txt || fail "diff exited $?"
grep -Eq '^summary: +9 tensors the same, 30 changed, 0 only in A, 0 only in B;' ab.txt || { fail "bf16 vs q8_0 summary"; cat ab.txt >&2; }
grep -Eq '^  ~ general\.file_type: ' ab.txt || fail "general.file_type change not shown"
"$SMELT" inspect a.gguf b.gguf --diff --filter 'blk\.0\.attn_(k|norm)' --json > ab.json || fail "diff --json exited $?"
"$PY" - a.gguf b.gguf ab.json <<'PYEOF' || fails=$((fails + 1))
import json, struct, sys
def read_gguf(path):
    d = open(path, "rb").read()
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, d, pos); pos += struct.calcsize("<" + fmt); return v[0]
    def string():
        nonlocal pos
        n = take("Q"); s = d[pos:pos + n].decode(); pos += n; return s
    SC = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def value(t):
        if t == 8: return string()
        if t == 9:
            et, n = take("I"), take("Q"); return [value(et) for _ in range(n)]
        return take(SC[t])
    assert d[:4] == b"GGUF"; pos = 4
    take("I"); nt, nkv = take("Q"), take("Q")
    kv = {}
    for _ in range(nkv):
        k = string(); kv[k] = value(take("I"))
    ts = {}
    for _ in range(nt):
        name = string(); nd = take("I"); dims = [take("Q") for _ in range(nd)]; ty = take("I"); off = take("Q")
        ts[name] = (dims, ty, off)
    al = kv.get("general.alignment", 32)
    base = (pos + al - 1) // al * al
    return d, kv, {n: (dims, ty, base + off) for n, (dims, ty, off) in ts.items()}
def f16(h): return struct.unpack("<e", struct.pack("<H", h))[0]
def values(d, dims, ty, off):
    n = 1
    for x in dims: n *= x
    if ty == 0: return list(struct.unpack_from("<%df" % n, d, off))
    if ty == 30: return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in struct.unpack_from("<%dH" % n, d, off)]
    if ty == 8:
        out = []
        for b in range(n // 32):
            p = off + 34 * b
            s = f16(struct.unpack_from("<H", d, p)[0])
            out += [s * q for q in struct.unpack_from("<32b", d, p + 2)]
        return out
    raise SystemExit(f"type {ty} not handled here")
da, kva, ta = read_gguf(sys.argv[1]); db, kvb, tb = read_gguf(sys.argv[2])
rep = json.load(open(sys.argv[3]))
bad = []
got = {t["name"]: t for t in rep["tensors"]}
want_names = sorted(n for n in ta if n.startswith("blk.0.attn_k") or n.startswith("blk.0.attn_norm"))
if sorted(got) != want_names: bad.append(f"--filter: tensors {sorted(got)}, expected {want_names}")
for name in want_names:
    va, vb = values(da, *ta[name]), values(db, *tb[name])
    mad = max(abs(x - y) for x, y in zip(va, vb))
    t = got.get(name, {})
    if t.get("max_abs_diff") is None or abs(t["max_abs_diff"] - mad) > 1e-6 * max(1.0, mad):
        bad.append(f"{name}: max_abs_diff {t.get('max_abs_diff')}, computed here {mad}")
    same = da[ta[name][2]:ta[name][2] + 4] == db[tb[name][2]:tb[name][2] + 4] and ta[name][1] == tb[name][1]
    if t.get("status") != ("same" if same and mad == 0 else "changed"): bad.append(f"{name}: status {t.get('status')}")
ch = {c["key"]: c for c in rep["metadata"]["changed"]}
if ch.get("general.file_type", {}).get("b") != kvb.get("general.file_type"): bad.append("general.file_type change")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
"$SMELT" inspect a.gguf --diff > e.txt 2>&1; [ $? = 2 ] || fail "--diff with one file should exit 2"
"$SMELT" inspect a.gguf "$KJV" --diff > e.txt 2>&1; [ $? = 1 ] && grep -q 'is not one' e.txt || fail "--diff of a directory should exit 1"
"$SMELT" inspect a.gguf --filter '(' > e.txt 2>&1; [ $? = 2 ] || fail "a bad --filter regex should exit 2"
tl_finish test_inspect_diff

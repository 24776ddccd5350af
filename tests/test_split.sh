#!/usr/bin/env bash
# test_split.sh - GGUF split sets (--split-max-size / --split-max-tensors): names and split.*
# keys as llama-gguf-split writes them (checked by an independent reader in Python), every
# reading command takes the first part as the whole model (same tensors, same quantized bytes,
# same perplexity as the unsplit file), opening another part or a set with a part missing is
# refused by name, and a set that cannot be completed leaves no part behind.
. "$(dirname "$0")/testlib.sh"
TL_ON_EXIT='chmod -R u+w "$TMP" 2>/dev/null'
TEXT=$ASSETS/text/kjv-eval.txt
PY=/usr/bin/python3
[ -f "$KJV/model.safetensors" ] && [ -f "$TEXT" ] || { echo "missing test assets (set SMELT_ASSETS)" >&2; exit 1; }
[ -x "$PY" ] || { echo "no python3" >&2; exit 77; }
cd "$TMP" || exit 1
export SMELT_NO_SYNC=1 SMELT_THREADS=2 OMP_WAIT_POLICY=passive
ok() { "$@" > out.txt 2> err.txt || { fail "exit $?: $*"; sed 's/^/    /' err.txt >&2; }; }
refused() {
  local re=$1
  shift
  if "$@" > out.txt 2> err.txt; then fail "exited 0: $*"; return; fi
  grep -Eq -- "$re" err.txt || { fail "stderr of '$*' does not match: $re"; sed 's/^/    /' err.txt >&2; }
}

ok "$SMELT" convert "$KJV" -o full.gguf -q
ok "$SMELT" convert "$KJV" -o sp.gguf --split-max-size 3M -q
ok "$SMELT" convert "$KJV" -o st --split-max-tensors 10 -q
ls sp-0000?-of-00003.gguf > /dev/null 2>&1 || fail "expected sp-0000{1,2,3}-of-00003.gguf, got: $(ls)"
ls st-0000?-of-00004.gguf > /dev/null 2>&1 || fail "expected st-0000{1..4}-of-00004.gguf (39 tensors, 10 per part)"
[ -e sp.gguf ] && fail "sp.gguf written beside the split set"

# an independent reader: the parts concatenate to the unsplit file's tensors (names, types,
# shapes, bytes), part 1 holds all metadata + split.*, the others only split.*, each part's
# tensor data is at most 3 MB (padded to 32) unless one tensor alone is larger
"$PY" - <<'PYEOF' || fail "split layout"
import struct, glob
def rd(path):
    b = open(path, "rb").read(); o = 0
    def u(fmt):
        nonlocal o; v = struct.unpack_from(fmt, b, o); o += struct.calcsize(fmt); return v[0]
    def s():
        n = u("<Q"); nonlocal o; v = b[o:o+n].decode(); o += n; return v
    SZ = {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
    F = {0:"<B",1:"<b",2:"<H",3:"<h",4:"<I",5:"<i",6:"<f",7:"<?",10:"<Q",11:"<q",12:"<d"}
    def val(t):
        if t == 8: return s()
        if t == 9:
            et = u("<I"); n = u("<Q"); return [val(et) for _ in range(n)]
        return u(F[t])
    assert b[:4] == b"GGUF"; o = 4; u("<I"); nt = u("<Q"); nkv = u("<Q")
    kv = []
    for _ in range(nkv):
        k = s(); t = u("<I"); kv.append((k, t, val(t)))
    ts = []
    for _ in range(nt):
        n = s(); nd = u("<I"); ne = [u("<q") for _ in range(nd)]; ty = u("<I"); off = u("<Q"); ts.append((n, ne, ty, off))
    al = 32; o = (o + al - 1) // al * al
    ends = [ts[i+1][3] for i in range(len(ts)-1)] + [len(b) - o]
    return kv, [(n, ne, ty, b[o+off:o+end]) for (n, ne, ty, off), end in zip(ts, ends)], len(b) - o
fkv, ft, _ = rd("full.gguf")
for pat, n in (("sp-*-of-00003.gguf", 3), ("st-*-of-00004.gguf", 4)):
    parts = sorted(glob.glob(pat)); assert len(parts) == n, parts
    allt = []
    for i, p in enumerate(parts):
        kv, t, data = rd(p)
        keys = [k for k, _, _ in kv]
        tail = [("split.no", 2, i), ("split.tensors.count", 5, len(ft)), ("split.count", 2, n)]
        assert kv[-3:] == tail, (p, kv[-3:])
        assert kv[:-3] == (fkv if i == 0 else []), p
        if pat.startswith("sp"): assert data <= 3000000 or len(t) == 1, (p, data)
        if pat.startswith("st"): assert len(t) == (10 if i < 3 else 9), (p, len(t))
        allt += t
    # tensor bytes: each padded to 32 in both files, so compare up to the unpadded size of full
    assert [(a[0], a[1], a[2]) for a in allt] == [(a[0], a[1], a[2]) for a in ft]
    for a, f in zip(allt, ft):
        assert a[3][:len(f[3].rstrip(b"\0"))] == f[3].rstrip(b"\0") or a[3] == f[3], a[0]
PYEOF

# reading commands take the first part as the whole model
ok "$SMELT" inspect sp-00001-of-00003.gguf --json
grep -q '"n_tensors":39' out.txt || fail "inspect of the first part does not show all 39 tensors"
ok "$SMELT" quantize full.gguf q_full.gguf Q4_K_M -q
ok "$SMELT" quantize sp-00001-of-00003.gguf q_split.gguf Q4_K_M -q
cmp -s q_full.gguf q_split.gguf || fail "quantizing the split set differs from quantizing the unsplit file"
ok "$SMELT" quantize full.gguf qs.gguf Q4_K_M --split-max-tensors 16 -q
ok "$SMELT" quantize qs-00001-of-00003.gguf back.gguf Q4_K_M --allow-requantize --pure -q
ok "$SMELT" ppl full.gguf --text "$TEXT" --ctx 64 --chunks 2 -q
a=$(grep -o 'PPL = [0-9.]*' out.txt)
ok "$SMELT" ppl sp-00001-of-00003.gguf --text "$TEXT" --ctx 64 --chunks 2 -q
b=$(grep -o 'PPL = [0-9.]*' out.txt)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "ppl of the split set ($b) differs from the unsplit file's ($a)"
ok "$SMELT" gptq sp-00001-of-00003.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 -o g.gguf --split-max-size 2M -q
ls g-0000?-of-0000?.gguf > /dev/null 2>&1 || fail "gptq --split-max-size wrote no split set: $(ls g*)"

# refusals: a later part, a missing part, bad sizes
refused "sp-00002-of-00003.gguf: part 2 of a split set of 3; open the first part" "$SMELT" inspect sp-00002-of-00003.gguf
mv sp-00003-of-00003.gguf away.gguf
refused "sp-00003-of-00003.gguf.*missing" "$SMELT" ppl sp-00001-of-00003.gguf --text "$TEXT" --ctx 64 --chunks 1 -q
mv away.gguf sp-00003-of-00003.gguf
refused "--split-max-size 3X: expected a positive size" "$SMELT" convert "$KJV" -o x.gguf --split-max-size 3X
refused "--split-max-tensors" "$SMELT" convert "$KJV" -o x.gguf --split-max-tensors 0
refused "apply to --to gguf" "$SMELT" gptq "$KJV" --calib "$TEXT" --to hf -o hfdir --split-max-size 1M

# no partial set: the third part cannot be renamed into place (a non-empty directory is in the
# way), so the parts already renamed are removed again and nothing else is left
mkdir -p "blk-00003-of-00003.gguf/x"
refused "blk-00003-of-00003.gguf" "$SMELT" convert "$KJV" -o blk.gguf --split-max-size 3M -q
left=$(ls -A | grep -E '^blk' | grep -v '^blk-00003-of-00003.gguf$')
[ -z "$left" ] || fail "a failed split set left: $left"
ls -A | grep -q '\.tmp' && fail "temporaries left: $(ls -A | grep '\.tmp')"

[ "$fails" = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "test_split: ok"

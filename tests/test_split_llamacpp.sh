#!/usr/bin/env bash
# test_split_llamacpp.sh - smelt's split GGUF against llama.cpp (needs LLAMA_CPP_BIN naming
# llama.cpp's build/bin with llama-gguf-split and llama-perplexity; exits 77 without it):
#  1. smelt convert/quantize --split-max-size / --split-max-tensors write byte for byte the
#     files llama-gguf-split --split makes of smelt's unsplit output;
#  2. llama-perplexity loads the set from its first file and gives the unsplit file's PPL;
#  3. llama-gguf-split --merge of smelt's set equals smelt's unsplit file except for the three
#     split.* keys the merge keeps in the metadata (split.count set to 0): the merged file is the
#     unsplit file plus those keys, so the two are not byte-identical; the test checks exactly
#     that difference (same tensors, same data bytes, same other keys).
. "$(dirname "$0")/testlib.sh"
[ -n "${LLAMA_CPP_BIN:-}" ] || skip "LLAMA_CPP_BIN is not set (llama.cpp's build/bin directory)"
TEXT=$ASSETS/text/kjv-eval.txt
PY=/usr/bin/python3
cd "$TMP" || exit 1
export SMELT_NO_SYNC=1 SMELT_THREADS=2 OMP_WAIT_POLICY=passive
run() { "$@" > out.txt 2> err.txt || { fail "exit $?: $*"; tail -5 err.txt >&2; }; }

run "$SMELT" convert "$KJV" -o full.gguf -q
run "$SMELT" quantize full.gguf q4.gguf Q4_K_M -q
for spec in "full --split-max-size 3M" "full --split-max-tensors 10" "q4 --split-max-size 1M"; do
  set -- $spec
  base=$1; shift
  rm -f sm-* ll-*
  if [ "$base" = full ]; then run "$SMELT" convert "$KJV" -o sm.gguf "$@" -q
  else run "$SMELT" quantize full.gguf sm.gguf Q4_K_M "$@" -q; fi
  run "$LLAMA_CPP_BIN/llama-gguf-split" --split "$@" "$base.gguf" ll
  n=$(ls ll-*.gguf | wc -l)
  [ "$n" -gt 1 ] || fail "$spec: llama-gguf-split made $n part(s)"
  for f in ll-*.gguf; do
    cmp -s "$f" "sm-${f#ll-}" || fail "$spec: sm-${f#ll-} differs from llama-gguf-split's $f"
  done
  [ "$(ls sm-*.gguf | wc -l)" = "$n" ] || fail "$spec: smelt wrote $(ls sm-*.gguf | wc -l) parts, llama-gguf-split $n"
  echo "ok   $spec: $n parts, byte-identical to llama-gguf-split's"
done

# 2. llama-perplexity from the first part = unsplit
rm -f sm-*
run "$SMELT" quantize full.gguf sm.gguf Q4_K_M --split-max-size 1M -q
a=$(llama_ppl q4.gguf "$TEXT" 128 4); b=$(llama_ppl sm-00001-of-*.gguf "$TEXT" 128 4)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "llama-perplexity: split set '$b', unsplit '$a'"
echo "ok   llama-perplexity loads the split set: $b (unsplit: $a)"

# 3. merge
run "$LLAMA_CPP_BIN/llama-gguf-split" --merge sm-00001-of-*.gguf merged.gguf
"$PY" - <<'PYEOF' || fail "merge of smelt's split set is not the unsplit file plus the split.* keys"
import struct
def rd(path):
    b = open(path, "rb").read(); o = 24
    nt, nkv = struct.unpack_from("<QQ", b, 8)
    def u(fmt):
        nonlocal o; v = struct.unpack_from(fmt, b, o); o += struct.calcsize(fmt); return v[0]
    def s():
        n = u("<Q"); nonlocal o; v = b[o:o+n]; o += n; return v
    F = {0:"<B",1:"<b",2:"<H",3:"<h",4:"<I",5:"<i",6:"<f",7:"<?",10:"<Q",11:"<q",12:"<d"}
    def val(t):
        if t == 8: return s()
        if t == 9:
            et = u("<I"); n = u("<Q"); return [val(et) for _ in range(n)]
        return u(F[t])
    kv = []
    for _ in range(nkv):
        k = s(); t = u("<I"); kv.append((k, t, val(t)))
    ti = []
    for _ in range(nt):
        n = s(); nd = u("<I"); ne = [u("<q") for _ in range(nd)]; ti.append((n, ne, u("<I"), u("<Q")))
    o = (o + 31) // 32 * 32
    return kv, ti, b[o:]
ukv, uti, ud = rd("q4.gguf"); mkv, mti, md = rd("merged.gguf")
extra = [k for k in mkv if k not in ukv]
assert [k[0] for k in extra] == [b"split.no", b"split.tensors.count", b"split.count"], extra
assert [k for k in mkv if k in ukv] == ukv
assert uti == mti and ud == md
print("ok   merged = unsplit + split.no/split.tensors.count/split.count (split.count 0); tensors and data identical")
PYEOF
[ "$fails" = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "test_split_llamacpp: ok"

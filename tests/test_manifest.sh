#!/usr/bin/env bash
# test_manifest.sh - release manifests: producing commands record their outputs (size, SHA-256,
# XXH3-128, provenance), `smelt ppl --manifest` the measured quality, `smelt verify --manifest`
# recomputes it all; a flipped byte, an unlisted artifact, a changed number and a manifest of
# another schema_version are refused, naming what differs. SHA-256 is checked against sha256sum.
. "$(dirname "$0")/testlib.sh"
TEXT=$ASSETS/text/kjv-eval.txt
PY=/usr/bin/python3
[ -f "$KJV/model.safetensors" ] && [ -f "$TEXT" ] || { echo "missing test assets (set SMELT_ASSETS)" >&2; exit 1; }
command -v sha256sum >/dev/null && [ -x "$PY" ] || { echo "no sha256sum / python3" >&2; exit 77; }
cd "$TMP" || exit 1
export SMELT_NO_SYNC=1 SMELT_THREADS=2 OMP_WAIT_POLICY=passive
ok() { "$@" > out.txt 2> err.txt || { fail "exit $?: $*"; sed 's/^/    /' err.txt >&2; }; }
# refused REGEX CMD...: CMD exits non-zero and its stderr matches REGEX
refused() {
  local re=$1
  shift
  if "$@" > out.txt 2> err.txt; then fail "exited 0: $*"; return; fi
  grep -Eq -- "$re" err.txt || { fail "stderr of '$*' does not match: $re"; sed 's/^/    /' err.txt >&2; }
}
field() { "$PY" -c "import json,sys; m=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }

ok "$SMELT" convert "$KJV" -o f16.gguf --outtype f16 --manifest rel.json -q
ok "$SMELT" quantize f16.gguf q4.gguf Q4_K_M --manifest rel.json -q
ok "$SMELT" quantize f16.gguf q8.gguf Q8_0 --manifest rel.json -q
ok "$SMELT" ppl q4.gguf --text "$TEXT" --ctx 128 --chunks 2 --kld f16.gguf --manifest rel.json -q

# what was recorded
[ "$(field rel.json 'm["schema_version"]')" = 1 ] || fail "schema_version is not 1"
[ "$(field rel.json 'len(m["artifacts"])')" = 3 ] || fail "expected 3 artifacts"
for f in f16.gguf q4.gguf q8.gguf; do
  want=$(sha256sum "$f" | cut -d' ' -f1)
  got=$(field rel.json "[a['sha256'] for a in m['artifacts'] if a['path']=='$f'][0]")
  [ "$want" = "$got" ] || fail "$f: manifest sha256 $got, sha256sum $want"
  size=$(field rel.json "[a['size'] for a in m['artifacts'] if a['path']=='$f'][0]")
  [ "$size" = "$(stat -c %s "$f")" ] || fail "$f: manifest size $size"
done
[ "$(field rel.json "[a for a in m['artifacts'] if a['path']=='q4.gguf'][0]['provenance']['recipe']")" = Q4_K_M ] ||
  fail "q4.gguf: recipe not recorded"
[ "$(field rel.json "[a for a in m['artifacts'] if a['path']=='q4.gguf'][0]['provenance']['method']['name']")" = rtn ] ||
  fail "q4.gguf: method not rtn"
src=$(field rel.json "[a for a in m['artifacts'] if a['path']=='f16.gguf'][0]['provenance']['sources']")
case $src in *model.safetensors*) ;; *) fail "f16.gguf: the source's model.safetensors is not listed";; esac
v=$(field rel.json "sorted([a for a in m['artifacts'] if a['path']=='q4.gguf'][0]['validation'])")
for k in ppl delta_ppl kld_mean top1_agreement ctx chunks text; do
  case $v in *"'$k'"*) ;; *) fail "validation lacks $k: $v";; esac
done

# verify: all, some, JSON, and with the validation rerun
ok "$SMELT" verify --manifest rel.json
ok "$SMELT" verify q4.gguf q8.gguf --manifest rel.json
ok "$SMELT" verify --manifest rel.json --rerun-validation -q
# a changed number fails the rerun, naming the artifact and the field
"$PY" - <<'PYEOF'
import json
m = json.load(open("rel.json"))
for a in m["artifacts"]:
    if a["path"] == "q4.gguf": a["validation"]["ppl"] *= 1.01
json.dump(m, open("bad_ppl.json", "w"))
m["schema_version"] = 2
json.dump(m, open("v2.json", "w"))
PYEOF
refused "q4.gguf: validation: ppl is .*the manifest says" "$SMELT" verify --manifest bad_ppl.json --rerun-validation
# wrong schema version, not a manifest, an unlisted artifact
refused "schema_version 2 is not supported \(this smelt reads 1\)" "$SMELT" verify --manifest v2.json
echo '[1,2]' > notobj.json
refused "notobj.json: not a manifest" "$SMELT" verify --manifest notobj.json
cp q8.gguf other.gguf
refused "other.gguf: not listed in rel.json" "$SMELT" verify other.gguf --manifest rel.json
# one flipped byte inside tensor data: named, with the field
cp q4.gguf q4.orig
printf '\x5a' | dd of=q4.gguf bs=1 seek=$(( $(stat -c %s q4.gguf) - 1000 )) conv=notrunc 2>/dev/null
refused "^smelt verify: error: q4.gguf: sha256 is [0-9a-f]{64}, the manifest says" "$SMELT" verify --manifest rel.json
# a truncated artifact: its size
head -c 1000 q4.orig > q4.gguf
refused "q4.gguf: size is 1000 bytes, the manifest says" "$SMELT" verify q4.gguf --manifest rel.json
mv q4.orig q4.gguf
ok "$SMELT" verify --manifest rel.json
# a missing artifact
mv q8.gguf q8.away
refused "q8.gguf: cannot open" "$SMELT" verify --manifest rel.json
mv q8.away q8.gguf
# smelt manifest: adds, keeps the provenance of what it re-hashes
ok "$SMELT" manifest q4.gguf other.gguf -o rel.json -q
[ "$(field rel.json 'len(m["artifacts"])')" = 4 ] || fail "smelt manifest: expected 4 artifacts"
[ "$(field rel.json "[a for a in m['artifacts'] if a['path']=='q4.gguf'][0]['provenance']['recipe']")" = Q4_K_M ] ||
  fail "smelt manifest dropped q4.gguf's provenance"
ok "$SMELT" verify --manifest rel.json
# usage: verify needs a manifest for anything but .smelt files
refused "needs --manifest" "$SMELT" verify q4.gguf
# a manifest moved with its artifacts still verifies (paths are relative to it)
mkdir moved && mv f16.gguf q4.gguf q8.gguf other.gguf rel.json moved/
ok "$SMELT" verify --manifest moved/rel.json
[ "$fails" = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "test_manifest: ok"

#!/usr/bin/env bash
# test_json.sh - every command's --json report against its field table in docs/json.md: every
# documented field is present (fields typed `T?` in at least one of the command's runs) with its
# documented type, no field is undocumented, `command` names the command, `smelt_version` is
# `smelt --version`'s, and `bytes_out` is the output's size on disk as measured here.
. "$(dirname "$0")/testlib.sh"
LORA=$ASSETS/models/tiny-llama-kjv-lora-fortunes
TEXT=$ASSETS/text/kjv-eval.txt
need_python
need_assets "$KJV/config.json" "$LORA/adapter_config.json" "$TEXT" "$SRC/docs/json.md"
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
J=$TMP/json
mkdir "$J"
# run SECTION OUTPUT ARGS...: `smelt ARGS --json` into $J/SECTION.N.json, with the output path
# (or -) beside it for the bytes_out check
n=0
run() {
  local section=$1 out=$2
  shift 2
  n=$((n + 1))
  if ! "$SMELT" "$@" --json > "$J/$section.$n.json" 2> "$TMP/err"; then
    echo "FAIL: smelt $* --json exited $?" >&2
    sed 's/^/    /' "$TMP/err" >&2
    fails=$((fails + 1))
    rm -f "$J/$section.$n.json"
    return
  fi
  printf '%s' "$out" > "$J/$section.$n.out"
}
cd "$TMP" || exit 1
run convert a.gguf convert "$KJV" -o a.gguf
run quantize q.gguf quantize a.gguf q.gguf Q4_K_M
run quantize t.gguf quantize a.gguf t.gguf --target-bpw 4.5 --calib "$TEXT" --probe-ctx 64 --probe-chunks 2
run "lora merge" merged lora merge "$KJV" --adapter "$LORA" -o merged
run "lora export" l.gguf lora export "$LORA" --base "$KJV" -o l.gguf
run tokenize - tokenize "$KJV" --text "$TEXT"
run ppl base.bin ppl a.gguf --text "$TEXT" --ctx 128 --chunks 2 --save-logits base.bin
run ppl - ppl q.gguf --kld base.bin
run generate - generate "$KJV" --prompt "In the beginning" -n 4
run generate - generate "$KJV" -n 4 --ids
run imatrix im.gguf imatrix a.gguf --text "$TEXT" --ctx 64 --chunks 2 -o im.gguf
run gptq g.gguf gptq a.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 -o g.gguf
run awq w.gguf awq a.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 -o w.gguf
run gptq wg.gguf gptq a.gguf --awq --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 -o wg.gguf
run gptq gt.gguf gptq a.gguf --calib "$TEXT" --to gguf --target-bpw 4.5 --sensitivity imatrix --probe-ctx 64 --probe-chunks 2 --samples 2 --seqlen 32 -o gt.gguf
# a mixture of experts (the moe object): a tiny Mixtral directory (random weights, the kjv tokenizer)
mkdir moe
cp "$KJV/tokenizer.model" "$KJV/tokenizer_config.json" "$KJV/special_tokens_map.json" moe/
"$PY" - moe <<'PYEOF'
import json, struct, sys
import numpy as np
d, H, F, E, V = sys.argv[1], 64, 64, 4, 2048
cfg = {"architectures": ["MixtralForCausalLM"], "hidden_size": H, "intermediate_size": F, "num_attention_heads": 4,
       "num_key_value_heads": 2, "num_hidden_layers": 1, "num_local_experts": E, "num_experts_per_tok": 2,
       "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": V,
       "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "model_type": "mixtral"}
json.dump(cfg, open(d + "/config.json", "w"))
rng = np.random.default_rng(1)
t = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,), "lm_head.weight": (V, H)}
p = "model.layers.0."
t.update({p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
          p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (32, H),
          p + "self_attn.v_proj.weight": (32, H), p + "self_attn.o_proj.weight": (H, H),
          p + "block_sparse_moe.gate.weight": (E, H)})
for e in range(E):
    for w, s in (("w1", (F, H)), ("w2", (H, F)), ("w3", (F, H))):
        t[p + "block_sparse_moe.experts.%d.%s.weight" % (e, w)] = s
hdr, blobs, off = {}, [], 0
for k, s in t.items():
    a = (np.ones(s) if len(s) == 1 else rng.normal(0, s[-1] ** -0.5, s)).astype(np.float32).tobytes()
    hdr[k] = {"dtype": "F32", "shape": list(s), "data_offsets": [off, off + len(a)]}
    blobs.append(a)
    off += len(a)
h = json.dumps(hdr).encode()
with open(d + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PYEOF
"$SMELT" convert moe -o moe.gguf --outtype f32 --quiet || fails=$((fails + 1))
run gptq gm.gguf gptq moe.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 -o gm.gguf
run sweep sw sweep a.gguf --eval "$TEXT" --calib "$TEXT" --recipes Q4_0 --methods rtn,imatrix --ctx 64 --chunks 2 --calib-chunks 2 -o sw
printf '{"models": [{"path": "a.gguf", "name": "a"}], "eval": "%s", "recipes": ["Q4_0"], "ctx": 64, "chunks": 2}' "$TEXT" > mx.json
run "sweep --matrix" swm sweep --matrix mx.json -o swm
# --slurm and --status against stand-in clients (tests/test_slurm.sh runs a real cluster)
mkdir fakeslurm
printf '#!/bin/sh\necho $$\n' > fakeslurm/sbatch
printf '#!/bin/sh\nexit 0\n' > fakeslurm/squeue
printf '#!/bin/sh\nexit 1\n' > fakeslurm/sacct
chmod +x fakeslurm/*
PATH=$TMP/fakeslurm:$PATH run "sweep --slurm" sws sweep a.gguf --eval "$TEXT" --recipes Q4_0 --methods rtn --ctx 64 --chunks 2 -o sws --slurm
PATH=$TMP/fakeslurm:$PATH run "sweep --status" - sweep --status sws
run pack q.smelt pack q.gguf -o q.smelt
run pack r.smelt pack q.gguf -o r.smelt --raw
run unpack q2.gguf unpack q.smelt -o q2.gguf
run pack d.smelt pack "$KJV" -o d.smelt --level 1
run unpack d unpack d.smelt -o d
run inspect - inspect q.gguf
run inspect - inspect "$KJV"
run "inspect --diff" - inspect a.gguf q.gguf --diff
run manifest m.json manifest a.gguf q.gguf -o m.json
run verify - verify q.gguf --manifest m.json

"$PY" - "$SRC/docs/json.md" "$J" "$("$SMELT" --version | head -1 | cut -d' ' -f2)" <<'PYEOF' || fails=$((fails + 1))
import json, os, re, sys
doc, jdir, version = sys.argv[1], sys.argv[2], sys.argv[3]
# the tables: "## SECTION" then rows "| field | type | meaning |"
tables, cur = {}, None
for line in open(doc, encoding="utf-8"):
    m = re.match(r"^## (.+?)\s*$", line)
    if m:
        cur = tables.setdefault(m.group(1), {})
        continue
    m = re.match(r"^\| ([a-z0-9_]+) \| ([a-z|\\?]+) \| .+\|\s*$", line)
    if m and cur is not None and m.group(1) != "field":
        cur[m.group(1)] = m.group(2).replace("\\", "")
common = tables.pop("Fields of every report")
PYT = {"string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}
def type_ok(v, t):
    for alt in t.rstrip("?").split("|"):
        if alt == "integer" and isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer():
            return True
        if alt == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return True
        if alt in PYT and isinstance(v, PYT[alt]):
            return True
    return False
def size(p):
    if p == "-" or not os.path.exists(p):
        return 0
    if os.path.isdir(p):
        return sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p)
                   if not f.startswith(".") and os.path.isfile(os.path.join(p, f)))
    return os.path.getsize(p)
bad = []
seen = {}
for f in sorted(os.listdir(jdir)):
    if not f.endswith(".json"):
        continue
    section = f.rsplit(".", 2)[0]
    if section not in tables:
        bad.append(f"{f}: no table '## {section}' in docs/json.md"); continue
    fields = dict(common, **tables[section])
    text = open(os.path.join(jdir, f), encoding="utf-8").read()
    if text.count("\n") != 1:
        bad.append(f"{f}: not exactly one line"); continue
    try:
        rep = json.loads(text)
    except ValueError as e:
        bad.append(f"{f}: not JSON: {e}"); continue
    for k, t in fields.items():
        if k not in rep:
            if not t.endswith("?"):
                bad.append(f"{f}: lacks {k}")
        elif not type_ok(rep[k], t):
            bad.append(f"{f}: {k} = {rep[k]!r:.60} is not {t}")
        else:
            seen.setdefault(section, set()).add(k)
    for k in rep:
        if k not in fields:
            bad.append(f"{f}: {k} is not documented in docs/json.md")
    expect_cmd = re.sub(r" --(diff|slurm|status|matrix)$", "", section)
    if rep.get("command") != expect_cmd:
        bad.append(f"{f}: command {rep.get('command')!r}, expected {expect_cmd!r}")
    if rep.get("smelt_version") != version:
        bad.append(f"{f}: smelt_version {rep.get('smelt_version')!r}, smelt --version says {version!r}")
    out = open(os.path.join(jdir, f[:-5] + ".out")).read()
    if rep.get("bytes_out") != size(out):
        bad.append(f"{f}: bytes_out {rep.get('bytes_out')} but {out} has {size(out)} bytes")
    if out != "-" and rep.get("output") != out:
        bad.append(f"{f}: output {rep.get('output')!r}, expected {out!r}")
    if not rep.get("inputs") or not all(isinstance(x, str) for x in rep["inputs"]):
        bad.append(f"{f}: inputs should be a non-empty array of paths")
for section, fields in tables.items():
    missing = [k for k in fields if k not in seen.get(section, set())]
    if missing:
        bad.append(f"section '{section}': no run showed {', '.join(missing)}")
for b in bad:
    print("FAIL:", b, file=sys.stderr)
print(f"test_json: {len(os.listdir(jdir)) // 2} reports, {len(tables)} tables checked", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
[ "$fails" = 0 ] || { echo "test_json: $fails failures" >&2; exit 1; }
echo "test_json: all reports match docs/json.md"

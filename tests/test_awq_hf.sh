#!/usr/bin/env bash
# test_awq_hf.sh - `smelt awq --to hf` (AutoAWQ "gemm" checkpoints) and the asymmetric transcoding
# of `smelt convert` (AWQ and GPTQ-asym checkpoints into Q4_1 blocks):
#  1. refusals: AWQ + GPTQ into --to hf, --bits other than 4; no output left;
#  2. awq --to hf on tiny-llama-kjv: config.json's quantization_config {quant_method awq, version
#     gemm, bits 4, group_size 128, zero_point true}, the tokenizer copied, per linear qweight I32
#     [in, out/8], qzeros I32 [in/128, out/8], scales F16 [in/128, out] and no g_idx, every other
#     tensor F16;
#  3. an independent reader (python + numpy: safetensors parsed here, AutoAWQ's unpacking order
#     0 4 1 5 2 6 3 7 over the eight nibbles of each word) dequantizes every linear to the values
#     smelt's AWQ reader gives (the F32 GGUF smelt convert writes of the checkpoint; q/k rows
#     rope-permuted as convert_hf_to_gguf.py permutes them; convert --dequantize), and every group is on AutoAWQ's grid
#     (codes and zero points in [0, 15], the largest and smallest weights at codes 15 and 0 or
#     clamped there);
#  4. smelt ppl of the checkpoint equals smelt ppl of its dequantized weights exactly (an HF
#     directory written here: F32 linears from that reader, the other tensors as they are);
#  5. smelt convert transcodes the checkpoint into Q4_1 (28 linears, the summary and --json say
#     so): decoded here (d * q + m per 32-block) every weight lies within the reported
#     gptq_max_abs_err of the checkpoint's value, and the largest difference is that bound; its
#     ppl is within 0.5% of the checkpoint's; with LLAMA_CPP_BIN, llama-perplexity of it is
#     within 0.5% of smelt's;
#  6. a GPTQ-asym checkpoint (smelt gptq --to hf --asym) transcodes into Q4_1 the same way
#     (smelt inspect --diff against its F32 conversion: within the reported bound);
#  7. KLD against the F32 model: AWQ below round-to-nearest on the same grid (awq --awq-alpha 0
#     --no-clip: s = 1, no clipping).
. "$(dirname "$0")/testlib.sh"
need_python
TEXT=$ASSETS/text/kjv-calib.txt
EVAL=$ASSETS/text/kjv-eval.txt
need_assets "$KJV/config.json" "$TEXT" "$EVAL"
"$PY" -c 'import numpy' 2>/dev/null || skip "python3 has no numpy"
cd "$TMP" || exit 1
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
CAL="--calib $TEXT --samples 8 --seqlen 128"

# shellcheck disable=SC2086
{
for bad in "--gptq|AWQ + GPTQ into --to hf is not supported" "--bits 8|--bits 4"; do
  "$SMELT" awq "$KJV" $CAL --to hf -o bad ${bad%%|*} > log 2>&1 && fail "awq --to hf ${bad%%|*} succeeded"
  grep -qF -- "${bad#*|}" log || fail "awq --to hf ${bad%%|*}: no '${bad#*|}' in: $(cat log)"
  [ -e bad ] && fail "awq --to hf ${bad%%|*} left its output"
done
"$SMELT" awq "$KJV" $CAL --to hf -o hf --quiet || fail "awq --to hf exited $?"
"$SMELT" awq "$KJV" $CAL --to hf -o rtn --quiet --awq-alpha 0 --no-clip || fail "awq --to hf (rtn) exited $?"
"$SMELT" gptq "$KJV" --calib "$TEXT" --samples 2 --seqlen 32 --to hf --asym -o gq --quiet || fail "gptq --asym exited $?"
}
[ -e hf/model.safetensors ] && [ -e hf/tokenizer.model ] || { fail "no checkpoint written"; tl_finish test_awq_hf; }
"$SMELT" convert hf -o hf32.gguf --outtype f32 --dequantize > conv32.txt 2>&1 || fail "convert --dequantize"
expect_grep conv32.txt '; 28 quantized linears dequantized into f32'
"$SMELT" convert hf -o hfq.gguf > conv.txt 2>&1 || fail "convert (transcode)"
"$SMELT" convert hf -o hfq2.gguf --json > conv.json || fail "convert --json"
expect_grep conv.txt 'q4_1 x28\), .*; 28 of 28 quantized linears transcoded without requantizing \((exact|largest weight difference [0-9.e-]+)\)'
"$SMELT" inspect hf32.gguf --json > i32.json && "$SMELT" inspect hfq.gguf --json > iq.json || fail "inspect"

"$PY" - "$KJV/config.json" hf hf32.gguf i32.json hfq.gguf iq.json conv.json deq <<'PYEOF' || fails=$((fails + 1))
import json, struct, sys
import numpy as np
cfg_path, hf, g32, i32, gq, iq, conv, deq = sys.argv[1:]
cfg = json.load(open(cfg_path))
bad = []
qc = json.load(open(hf + "/config.json")).get("quantization_config", {})
for k, v in {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": 128, "zero_point": True}.items():
    if qc.get(k) != v: bad.append(f"quantization_config.{k} = {qc.get(k)!r}, expected {v!r}")
raw = open(hf + "/model.safetensors", "rb").read()
n = struct.unpack_from("<Q", raw, 0)[0]
hdr = json.loads(raw[8:8 + n]); hdr.pop("__metadata__", None)
def arr(name):
    t = hdr[name]; a, b = t["data_offsets"]
    dt = {"I32": np.int32, "F16": np.float16, "F32": np.float32}[t["dtype"]]
    return np.frombuffer(raw, dtype=dt, count=(b - a) // np.dtype(dt).itemsize, offset=8 + n + a).reshape(t["shape"])
G = 128
REV = [0, 4, 1, 5, 2, 6, 3, 7]  # AutoAWQ's reverse order: output j of a word is nibble REV[j]
def unpack(words):  # int32 [rows, cols/8] -> [rows, cols] codes
    w = words.astype(np.int64) & 0xFFFFFFFF
    nib = np.stack([(w >> (4 * k)) & 15 for k in range(8)], axis=-1)
    return nib[:, :, REV].reshape(w.shape[0], -1)
def gguf_tensors(gguf, ins):
    data = open(gguf, "rb").read()
    return data, {t["name"]: t for t in json.load(open(ins))["tensors"]}
d32, t32 = gguf_tensors(g32, i32)
dq, tq = gguf_tensors(gq, iq)
E, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
def permute(w, heads):  # convert_hf_to_gguf.py's LlamaModel.permute
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
LIN = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
       "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
rep = json.load(open(conv))
bound = rep.get("gptq_max_abs_err")
worst = 0.0
nlin = 0
deqw = {}
for name in hdr:
    if not name.endswith(".qweight"):
        if hdr[name]["dtype"] != "F16" and not name.endswith((".qzeros", ".scales")): bad.append(f"{name}: {hdr[name]['dtype']}")
        continue
    p = name[: -len(".qweight")]
    if p + ".g_idx" in hdr: bad.append(f"{p}.g_idx present")
    qw, qz, sc = arr(p + ".qweight"), arr(p + ".qzeros"), arr(p + ".scales")
    ins, outs = qw.shape[0], qw.shape[1] * 8
    if qw.dtype != np.int32 or qz.dtype != np.int32 or sc.dtype != np.float16: bad.append(f"{p}: dtypes")
    if list(qz.shape) != [ins // G, outs // 8] or list(sc.shape) != [ins // G, outs]: bad.append(f"{p}: shapes {qz.shape} {sc.shape}")
    q, z = unpack(qw), unpack(qz)
    zr = np.repeat(z, G, axis=0); sr = np.repeat(sc.astype(np.float32), G, axis=0)
    w = ((q - zr).astype(np.float32) * sr).T  # [out, in], the checkpoint's values
    deqw[p + ".weight"] = w
    # AutoAWQ's grid: in each (output, group) the codes span [0, 15] unless clamped by the zero point
    qg = q.T.reshape(outs, ins // G, G)
    if qg.max(axis=2).min() < 8 or qg.min(axis=2).max() > 7: bad.append(f"{p}: codes do not span the groups")
    l = int(p.split(".")[2]); kind = LIN[".".join(p.split(".")[3:])]
    ref = w if kind not in ("attn_q", "attn_k") else permute(w, H if kind == "attn_q" else KV)
    gname = f"blk.{l}.{kind}.weight"
    t = t32[gname]
    got = np.frombuffer(d32, dtype=np.float32, count=w.size, offset=t["offset"]).reshape(w.shape)
    if not np.array_equal(got, ref): bad.append(f"{gname}: smelt's reader differs by {np.abs(got - ref).max()}")
    t = tq[gname]
    if t["type"] != "q4_1": bad.append(f"{gname}: transcoded as {t['type']}"); continue
    blk = np.frombuffer(dq, dtype=np.uint8, count=w.size // 32 * 20, offset=t["offset"]).reshape(-1, 20)
    d = blk[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blk[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = blk[:, 4:]
    q1 = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32)
    v = (q1 * d + m).reshape(w.shape)
    worst = max(worst, float(np.abs(v.astype(np.float64) - ref.astype(np.float64)).max()))
    nlin += 1
if nlin != 7 * cfg["num_hidden_layers"]: bad.append(f"{nlin} linears")
# the dequantized weights (F32, as computed here) beside the other tensors: an HF directory
import os, shutil
os.makedirs(deq)
blobs, h, off = [], {}, 0
for name in hdr:
    if name.endswith((".qzeros", ".scales")): continue
    v = deqw[name[: -len(".qweight")] + ".weight"] if name.endswith(".qweight") else arr(name)
    name = name[: -len(".qweight")] + ".weight" if name.endswith(".qweight") else name
    b = np.ascontiguousarray(v).tobytes()
    h[name] = {"dtype": "F32" if v.dtype == np.float32 else "F16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
with open(deq + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
c = json.load(open(hf + "/config.json")); del c["quantization_config"]; c["torch_dtype"] = "float32"
json.dump(c, open(deq + "/config.json", "w"))
for f in os.listdir(hf):
    if f not in ("config.json", "model.safetensors"): shutil.copy(hf + "/" + f, deq + "/" + f)
if bound is None or abs(worst - bound) > 1e-12: bad.append(f"Q4_1 vs checkpoint: largest difference {worst}, reported {bound}")
if rep.get("gptq_transcoded") != nlin or rep.get("gptq_dequantized") != 0 or rep.get("gptq_exact") != (worst == 0):
    bad.append(f"convert --json: {rep}")
print(f"Q4_1 transcoding: largest weight difference {worst}")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

ppl() { "$SMELT" ppl "$1" -f "$EVAL" -c 256 --chunks 8 --quiet --json ${2:+--kld "$2"} > "$TMP/p.json" 2> "$TMP/p.err" || { fail "ppl $1: $(cat "$TMP/p.err")"; return; }
  json_num "$TMP/p.json" "${3:-ppl}"; }
p_hf=$(ppl hf); p_deq=$(ppl deq); p_q=$(ppl hfq.gguf)
echo "ppl: checkpoint $p_hf, its dequantized weights $p_deq, its Q4_1 transcoding $p_q"
[ -n "$p_hf" ] && [ "$p_hf" = "$p_deq" ] || fail "ppl of the checkpoint ($p_hf) differs from its dequantized weights' ($p_deq)"
within() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && b > 0 && d <= 0.005 * b) }'; }
within "$p_q" "$p_hf" || fail "ppl of the Q4_1 transcoding ($p_q) is not within 0.5% of the checkpoint's ($p_hf)"

"$SMELT" convert gq -o gq32.gguf --outtype f32 --dequantize --quiet && "$SMELT" convert gq -o gqq.gguf --json > gconv.json ||
  fail "convert of the GPTQ-asym checkpoint"
"$SMELT" inspect gq32.gguf gqq.gguf --diff --json > gdiff.json || fail "inspect --diff"
"$PY" - gconv.json gdiff.json <<'PYEOF' || fails=$((fails + 1))
import json, sys
rep, diff = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = []
if rep["tensor_types"].get("q4_1") != 28 or rep["gptq_transcoded"] != 28: bad.append(f"GPTQ asym: {rep}")
lin = [t for t in diff["tensors"] if t["name"].startswith("blk.") and t["name"].endswith(".weight") and "norm" not in t["name"]]
worst = max((t.get("max_abs_diff") or 0) for t in lin)
if len(lin) != 28 or abs(worst - rep["gptq_max_abs_err"]) > 1e-12:
    bad.append(f"GPTQ asym: {len(lin)} linears, largest difference {worst}, reported {rep['gptq_max_abs_err']}")
print(f"GPTQ asym Q4_1 transcoding: largest weight difference {worst}")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

k_awq=$(ppl hf "$KJV" kld_mean); k_rtn=$(ppl rtn "$KJV" kld_mean)
echo "KLD vs the F32 model (ctx 256, 8 chunks): awq $k_awq, round-to-nearest $k_rtn"
awk -v a="$k_awq" -v r="$k_rtn" 'BEGIN { exit !(a > 0 && a < r) }' || fail "AWQ's KLD ($k_awq) is not below round-to-nearest's ($k_rtn)"

if [ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-perplexity" ]; then
  l_q=$(llama_ppl hfq.gguf "$EVAL" 256 4)
  p_q4=$("$SMELT" ppl hfq.gguf -f "$EVAL" -c 256 --chunks 4 --quiet 2>/dev/null | sed -nE 's/.*PPL = ([0-9.]+).*/\1/p' | head -1)
  echo "Q4_1 transcoding: llama-perplexity $l_q, smelt $p_q4"
  [ -n "$l_q" ] || fail "llama-perplexity of the Q4_1 transcoding: $(tail -3 "$TMP/llama-ppl.log")"
  [ -n "$l_q" ] && { within "$l_q" "$p_q4" || fail "llama-perplexity $l_q vs smelt $p_q4: more than 0.5% apart"; }
else
  echo "note: LLAMA_CPP_BIN not set: llama-perplexity's part skipped" >&2
fi
tl_finish test_awq_hf

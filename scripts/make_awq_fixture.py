#!/usr/bin/python3
"""AutoAWQ "gemm" checkpoints made and read the way AutoAWQ does, independently of smelt.

The quantizer is AutoAWQ's pseudo_quantize_tensor (zero_point=True, 4 bits: per group
scale = (max - min).clamp(min=1e-5) / 15, zero = clamp(-round(min / scale), 0, 15)); the
packing is WQLinear_GEMM.from_linear (codes of 8 outputs per int32 in the order
[0, 2, 4, 6, 1, 3, 5, 7], qweight [in, out/8], qzeros [in/group, out/8], fp16 scales
[in/group, out]); the reader is awq/utils/packing_utils.py's dequantize_gemm (shift right by
0, 4, ..., 28, reorder with [0, 4, 1, 5, 2, 6, 3, 7], & 15, (q - zero) * scale), computed in
float32 here (AutoAWQ's fp16 product is reported beside it). The codes are clamped to
[0, 15] after rounding with the fp16 scale (from_linear rounds without a clamp).

  make_awq_fixture.py fixture OUTDIR
      OUTDIR/linear.safetensors: l.qweight, l.qzeros, l.scales of a random 48 x 256 linear
      (group 64) and l.expected, the F32 weight [48, 256] dequantize_gemm gives
      (tests/test_gptq_hf.c reads it); OUTDIR/../fuzz-seeds seed: see `seed`.
  make_awq_fixture.py seed PATH
      a fuzz_gptq_hf input holding the same linear (formats/fuzz_gptq_hf.c layout)
  make_awq_fixture.py model SRC_DIR AWQ_DIR DEQ_DIR [GROUP]
      every decoder linear of the F32 Hugging Face checkpoint SRC_DIR quantized as above:
      AWQ_DIR the AutoAWQ checkpoint (config.json with quantization_config), DEQ_DIR the same
      model with dequantize_gemm's F32 weights (smelt ppl of both must agree).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "I32": (np.int32, 4)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16, "BF16": None, "I32": np.int32}[v["dtype"]]
        if dt is None:
            raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[a:b], dtype=dt)
        out[k] = arr.reshape(v["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k, arr in tensors.items():
        name = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int32): "I32"}[arr.dtype]
        b = np.ascontiguousarray(arr).tobytes()
        hdr[k] = {"dtype": name, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def quantize(w, group):
    """AutoAWQ's pseudo_quantize_tensor (zero_point): fp16 scales [in/g, out], zeros, codes [out, in]."""
    out_f, in_f = w.shape
    wg = w.reshape(-1, group)
    mx, mn = wg.amax(dim=1, keepdim=True), wg.amin(dim=1, keepdim=True)
    scales = (mx - mn).clamp(min=1e-5) / 15
    zeros = (-torch.round(mn / scales)).clamp_(0, 15)
    s16 = scales.half().float()
    q = torch.clamp(torch.round(wg / s16) + zeros, 0, 15).to(torch.int32).reshape(out_f, in_f)
    scales = s16.reshape(out_f, -1).t().contiguous()  # [in/g, out]
    zeros = zeros.to(torch.int32).reshape(out_f, -1).t().contiguous()
    return q, scales, zeros


def pack(q, scales, zeros):
    """WQLinear_GEMM.from_linear's packing."""
    intweight = q.t().contiguous()  # [in, out]
    qweight = torch.zeros((intweight.shape[0], intweight.shape[1] // 8), dtype=torch.int32)
    for col in range(intweight.shape[1] // 8):
        for i in range(8):
            qweight[:, col] |= intweight[:, col * 8 + AWQ_ORDER[i]] << (i * 4)
    qzeros = torch.zeros((zeros.shape[0], zeros.shape[1] // 8), dtype=torch.int32)
    for col in range(zeros.shape[1] // 8):
        for i in range(8):
            qzeros[:, col] |= zeros[:, col * 8 + AWQ_ORDER[i]] << (i * 4)
    return qweight, qzeros, scales.half()


def dequantize_gemm(qweight, qzeros, scales, group, fp16=False):
    """packing_utils.dequantize_gemm; returns the weight [out, in]."""
    shifts = torch.arange(0, 32, 4)
    iw = torch.bitwise_right_shift(qweight[:, :, None], shifts[None, None, :]).to(torch.int8).view(qweight.shape[0], -1)
    iz = torch.bitwise_right_shift(qzeros[:, :, None], shifts[None, None, :]).to(torch.int8).view(qzeros.shape[0], -1)
    rev = torch.arange(iz.shape[-1]).view(-1, 8)[:, AWQ_REVERSE_ORDER].view(-1)  # int64: this torch indexes with long only
    iw, iz = iw[:, rev], iz[:, rev]
    iw, iz = torch.bitwise_and(iw, 15), torch.bitwise_and(iz, 15)
    s = scales.repeat_interleave(group, dim=0)
    iz = iz.repeat_interleave(group, dim=0)
    w = (iw - iz) * (s if fp16 else s.float())
    return w.t().contiguous()


def linear(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(48, 256, generator=g) * 0.05
    w[:, 7] *= 20  # an outlier input column
    w[3, 64:128] = 0.25  # a constant group (scale from the clamp)
    return w


def cmd_fixture(outdir):
    os.makedirs(outdir, exist_ok=True)
    q, s, z = quantize(linear(7), 64)
    qw, qz, sh = pack(q, s, z)
    exp = dequantize_gemm(qw, qz, sh, 64)
    write_safetensors(os.path.join(outdir, "linear.safetensors"),
                      {"l.qweight": qw.numpy(), "l.qzeros": qz.numpy(), "l.scales": sh.numpy(),
                       "l.expected": exp.numpy().astype(np.float32)})
    print("fixture: 48 x 256, group 64, max |w - deq| = %.4g" % float((linear(7) - exp).abs().max()))


def cmd_seed(path):
    q, s, z = quantize(linear(7), 64)
    qw, qz, sh = pack(q, s, z)
    cfg = json.dumps({"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "GEMM"})
    hdr = struct.pack("<IIIIBBBB", 48, qw.shape[0], qz.shape[0], qz.shape[1], 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(cfg.encode() + b"\n" + hdr + qw.numpy().tobytes() + qz.numpy().tobytes() + sh.numpy().tobytes())


LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def cmd_model(src, awq_dir, deq_dir, group):
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    awq, deq, worst16 = {}, {}, 0.0
    for k, v in t.items():
        if k.endswith(".weight") and k.split(".")[-2] in LINEARS:
            w = torch.from_numpy(v.astype(np.float32))
            q, s, z = quantize(w, group)
            qw, qz, sh = pack(q, s, z)
            stem = k[: -len(".weight")]
            awq[stem + ".qweight"], awq[stem + ".qzeros"], awq[stem + ".scales"] = qw.numpy(), qz.numpy(), sh.numpy()
            d = dequantize_gemm(qw, qz, sh, group)
            d16 = dequantize_gemm(qw, qz, sh, group, fp16=True).float()
            worst16 = max(worst16, float((d - d16).abs().max()))
            deq[k] = d.numpy().astype(np.float32)
        else:
            awq[k] = v.astype(np.float32)
            deq[k] = v.astype(np.float32)
    for d, tensors, qc in ((awq_dir, awq, True), (deq_dir, deq, False)):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(src):
            if f not in ("model.safetensors", "config.json") and os.path.isfile(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), d)
        c = dict(cfg)
        if qc:
            c["quantization_config"] = {"quant_method": "awq", "zero_point": True, "group_size": group, "bits": 4,
                                        "version": "gemm", "modules_to_not_convert": None}
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    print("model: %d linears, group %d; AutoAWQ's fp16 product differs from the f32 one by <= %.3g"
          % (sum(1 for k in awq if k.endswith(".qweight")), group, worst16))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["fixture"] and len(a) == 2:
        cmd_fixture(a[1])
    elif a[:1] == ["seed"] and len(a) == 2:
        cmd_seed(a[1])
    elif a[:1] == ["model"] and len(a) in (4, 5):
        cmd_model(a[1], a[2], a[3], int(a[4]) if len(a) == 5 else 128)
    else:
        sys.exit(__doc__)

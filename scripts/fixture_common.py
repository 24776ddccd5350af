"""fixture_common.py - what the tiny-checkpoint scripts (scripts/make_*_reference.py) share: the
integer weight recipe (tests/testlib.c repeats it), the HF directory writer (config.json,
tokenizer files, an F32 model.safetensors in recipe order), the 24 reference tokens, the torch
pieces every reference forward uses (RMSNorm, rotate_half rope) and the logits file.

The recipe: tensors in the order of the script's names(), tensor i seeded with s = 1000 + i; for
each element (row-major) s = (s * 1103515245 + 12345) mod 2^31, v = ((s >> 8) mod 255) - 127; a
norm weight (name containing "norm") is norm_base + v / 1024 (1 for the models whose RMSNorm
multiplies by w, 0 for Gemma's, which multiply by 1 + w), any other weight v / 512. Every value
is exactly representable in float32.
"""
import json
import os
import shutil
import struct

T = 24  # reference tokens


def values(i, name, shape, norm_base=1.0):
    n = 1
    for d in shape:
        n *= d
    s, vals = 1000 + i, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % (1 << 31)
        v = ((s >> 8) % 255) - 127
        vals.append(norm_base + v / 1024 if "norm" in name else v / 256 if name.endswith(".bias") else v / 512)
    return vals


def write_safetensors(path, names, norm_base=1.0, prefix=""):
    """An F32 safetensors file of names() [(name, shape)], values from the recipe; `prefix` goes
    before every stored name (the recipe's seeds follow the list order either way)."""
    header, blobs, off = {}, [], 0
    for i, (n, shape) in enumerate(names):
        b = struct.pack("<%df" % len(v := values(i, n, shape, norm_base)), *v)
        header[prefix + n] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def write_hf_dir(out, config, names, norm_base=1.0, copy=(), tokenizer_config=None, prefix=""):
    """The HF directory: the files `copy` [(source, name)], tokenizer_config.json (if given),
    config.json and model.safetensors."""
    os.makedirs(out, exist_ok=True)
    for src, name in copy:
        shutil.copyfile(src, os.path.join(out, name))
    if tokenizer_config is not None:
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config, f, indent=1)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), names, norm_base, prefix)


def weights(names, norm_base=1.0):
    """The recipe's tensors as float32 torch tensors, by name."""
    import torch
    return {n: torch.tensor(values(i, n, s, norm_base), dtype=torch.float32).reshape(s)
            for i, (n, s) in enumerate(names)}


def tokens(vocab):
    """[1] + [(i*37 + 11) mod vocab for i in 1..23]"""
    import torch
    return torch.tensor([1] + [(i * 37 + 11) % vocab for i in range(1, T)])


def rms(x, w, eps, one_plus=False):
    """RMSNorm in float32: w * normalized x (LlamaRMSNorm and kin), or normalized x * (1 + w) (Gemma's)."""
    import torch
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w) if one_plus else w * y


def rotate_half(x):
    import torch
    hd = x.shape[-1]
    return torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), dim=-1)


def rope_cos_sin(n, hd, theta, factor=1.0):
    """cos, sin [n, hd] of the default rope (rotate_half layout); `factor`: linear scaling (positions / factor)."""
    import torch
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    if factor != 1.0:
        inv = inv / factor
    ang = torch.outer(torch.arange(n).float(), inv)
    return torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()


def rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def save_logits(path, logits, toks, label):
    """Prints the perplexity over the 23 next tokens and writes the logits (little-endian float32,
    row = position)."""
    import torch
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, toks[1:, None]).mean()
    print(f"{label}: ppl over the {len(toks) - 1} next tokens = {float(torch.exp(nll)):.6f}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % logits.numel(), *logits.flatten().tolist()))

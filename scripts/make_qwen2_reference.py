#!/usr/bin/python3
"""make_qwen2_reference.py - torch reference logits for tests/test_runtime.c's tiny Qwen2.

The model's weights are not stored anywhere: both this script and the C test generate them
from the same integer recipe (below), exactly representable in float32. This script runs the
forward pass of Hugging Face's Qwen2ForCausalLM (written out in torch, float32: RMSNorm, q/k/v
projections with biases, rotate_half RoPE with theta 1e6, grouped-query attention with the
causal mask, SiLU-gated MLP, tied lm_head) on 24 fixed tokens and writes the logits of every
position for the first 128 vocabulary ids to tests/data/qwen2-tiny/logits_24x128.f32
(little-endian float32, row = position).

Recipe: tensors in the order of NAMES, tensor i seeded with s = 1000 + i; for each element
(row-major) s = (s * 1103515245 + 12345) mod 2^31, v = ((s >> 8) mod 255) - 127; a matrix
element is v / 512, a bias v / 256, a norm weight 1 + v / 1024.

usage: /usr/bin/python3 scripts/make_qwen2_reference.py   (needs torch; run from the repo root)
"""
import struct
import torch

HIDDEN, HEADS, KV_HEADS, FF, LAYERS, VOCAB, THETA, EPS = 64, 4, 2, 96, 2, 2048, 1e6, 1e-6
HD = HIDDEN // HEADS


def names():
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.q_proj.weight", (HEADS * HD, HIDDEN)), (p + "self_attn.q_proj.bias", (HEADS * HD,)),
                (p + "self_attn.k_proj.weight", (KV_HEADS * HD, HIDDEN)), (p + "self_attn.k_proj.bias", (KV_HEADS * HD,)),
                (p + "self_attn.v_proj.weight", (KV_HEADS * HD, HIDDEN)), (p + "self_attn.v_proj.bias", (KV_HEADS * HD,)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HD)),
                (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "mlp.gate_proj.weight", (FF, HIDDEN)), (p + "mlp.up_proj.weight", (FF, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FF))]
    return out + [("model.norm.weight", (HIDDEN,))]


def tensor(i, name, shape):
    n = 1
    for d in shape:
        n *= d
    s, vals = 1000 + i, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % (1 << 31)
        v = ((s >> 8) % 255) - 127
        vals.append(1 + v / 1024 if "norm" in name else v / 256 if name.endswith(".bias") else v / 512)
    return torch.tensor(vals, dtype=torch.float32).reshape(shape)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate_half(x):
    return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)


def main():
    W = {n: tensor(i, n, s) for i, (n, s) in enumerate(names())}
    toks = torch.tensor([1] + [(i * 37 + 11) % VOCAB for i in range(1, 24)])
    T = len(toks)
    x = W["model.embed_tokens.weight"][toks]
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]).view(T, HEADS, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]).view(T, KV_HEADS, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        a = torch.softmax(q @ k.transpose(1, 2) / HD ** 0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, HIDDEN) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    logits = rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T
    with open("tests/data/qwen2-tiny/logits_24x128.f32", "wb") as f:
        f.write(struct.pack("<%df" % (T * 128), *logits[:, :128].flatten().tolist()))


if __name__ == "__main__":
    main()

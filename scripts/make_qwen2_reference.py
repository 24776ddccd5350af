#!/usr/bin/python3
"""make_qwen2_reference.py - torch reference logits for tests/test_runtime.c's tiny Qwen2.

The model's weights are not stored anywhere: both this script and the C test generate them
from the same integer recipe (below), exactly representable in float32. This script runs the
forward pass of Hugging Face's Qwen2ForCausalLM (written out in torch, float32: RMSNorm, q/k/v
projections with biases, rotate_half RoPE with theta 1e6, grouped-query attention with the
causal mask, SiLU-gated MLP, tied lm_head) on 24 fixed tokens and writes the logits of every
position for the first 128 vocabulary ids to tests/data/qwen2-tiny/logits_24x128.f32
(little-endian float32, row = position).

Recipe: fixture_common.py's, tensors in the order of names().

usage: /usr/bin/python3 scripts/make_qwen2_reference.py   (needs torch; run from the repo root)
"""
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

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


def rms(x, w):
    return fc.rms(x, w, EPS)


def main():
    W = fc.weights(names())
    toks = fc.tokens(VOCAB)
    T = len(toks)
    x = W["model.embed_tokens.weight"][toks]
    cos, sin = fc.rope_cos_sin(T, HD, THETA)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]).view(T, HEADS, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]).view(T, KV_HEADS, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = fc.rope(q, cos, sin), fc.rope(k, cos, sin)
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

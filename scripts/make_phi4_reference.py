#!/usr/bin/python3
"""make_phi4_reference.py - torch references for the long-context Phi-3 and the Phi-4-mini variants
of the tiny Phi-3 fixture (tests/test_arch_phi4.c makes both from tl_make_phi3_tiny's directory).

    /usr/bin/python3 scripts/make_phi4_reference.py     # writes tests/data/phi4-tiny/*

Both use the weights of scripts/make_phi3_reference.py (same names, same integer recipe) and
change config.json as tests/test_arch_phi4.c does:

  phi3-long  Phi-3-mini-128k / Phi-3.5-mini style: max_position_embeddings 128,
             original_max_position_embeddings 32, rope_scaling {"type": "longrope",
             "short_factor": SHORT8, "long_factor": LONG8}; weights, tokenizer unchanged.
  phi4-mini  Phi-4-mini style: the same plus partial_rotary_factor 0.75 (12 of the 16 dimensions
             of each head rotated, 6 factors: SHORT6 / LONG6), tie_word_embeddings true (no
             lm_head.weight: the output is embed_tokens), sliding_window 262144, and a GPT-4o-style
             BPE tokenizer.json (tests/data/bpe-gpt4o; vocab_size 2048 pads its 684 tokens as
             Phi-4-mini's 200064 pads its tokenizer).

The forward is transformers' modeling_phi3.py with modeling_rope_utils' longrope
(_compute_longrope_parameters): inv_freq = 1 / (ext_factors * theta^(arange(0, dim, 2) / dim))
with dim = int(head_dim * partial_rotary_factor), ext_factors the long factors when the sequence is
longer than original_max_position_embeddings (else the short ones), cos and sin multiplied by
attention_factor = sqrt(1 + ln(128 / 32) / ln(32)); rotate_half over the first dim dimensions of
each head, the rest passed through. The sequence lengths are chosen so that transformers' choice
(by sequence length) equals llama.cpp's (by context size, which the test sets to the length):
24 tokens (short factors) and 64 tokens (long factors).

Outputs (little-endian float32), for each variant V in phi3long, phi4mini and each length T in 24, 64:
  tests/data/phi4-tiny/V_T.f32: the logits of the last 8 positions (8 x 2048), then the
  perplexity of the T - 1 next tokens (one float) - tokens [1] + [(i*37 + 11) mod 2048 for i in 1..T-1].
"""
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_phi3_reference as p3  # noqa: E402

SHORT8 = [1.0, 1.05, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0]
LONG8 = [1.0, 1.25, 1.8, 2.6, 4.0, 6.5, 10.0, 16.0]
SHORT6 = [1.0, 1.1, 1.25, 1.4, 1.6, 2.0]
LONG6 = [1.0, 1.5, 2.5, 4.5, 8.0, 14.0]
MAX_POS, ORIG = 128, 32
LAST = 8


def forward(T, rot_dim, short, long, tied):
    import torch
    HD, HEADS, KV, VOCAB, EPS, THETA = p3.HD, p3.HEADS, p3.KV_HEADS, p3.VOCAB, p3.EPS, p3.THETA
    W = {n: torch.tensor(p3.values(i, n, s), dtype=torch.float32).reshape(s) for i, (n, s) in enumerate(p3.names())}
    if tied:
        W["lm_head.weight"] = W["model.embed_tokens.weight"]
    toks = torch.tensor([1] + [(i * 37 + 11) % VOCAB for i in range(1, T)])

    def rms(x, w):  # Phi3RMSNorm
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    # modeling_rope_utils._compute_longrope_parameters + Phi3RotaryEmbedding
    factor = MAX_POS / ORIG
    attention_factor = math.sqrt(1 + math.log(factor) / math.log(ORIG)) if factor > 1 else 1.0
    ext = torch.tensor(long if T > ORIG else short, dtype=torch.float32)
    inv = 1.0 / (ext * THETA ** (torch.arange(0, rot_dim, 2, dtype=torch.int64).float() / rot_dim))
    ang = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((ang, ang), -1)
    cos, sin = emb.cos() * attention_factor, emb.sin() * attention_factor

    def rope(x):  # apply_rotary_pos_emb with a partial rotary dimension
        xr, xp = x[..., :rot_dim], x[..., rot_dim:]
        return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)

    x = W["model.embed_tokens.weight"][toks]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(p3.LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        qkv = h @ W[p + "self_attn.qkv_proj.weight"].T
        qp = HEADS * HD
        q = qkv[..., :qp].view(T, HEADS, HD).transpose(0, 1)
        k = qkv[..., qp:qp + KV * HD].view(T, KV, HD).transpose(0, 1)
        v = qkv[..., qp + KV * HD:].view(T, KV, HD).transpose(0, 1)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(HEADS // KV, 0), v.repeat_interleave(HEADS // KV, 0)
        a = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        gate, up = (h @ W[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        x = x + (up * torch.nn.functional.silu(gate)) @ W[p + "mlp.down_proj.weight"].T
    logits = rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].T
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, toks[1:, None]).mean()
    return logits, float(torch.exp(nll))


def main():
    out = "tests/data/phi4-tiny"
    os.makedirs(out, exist_ok=True)
    variants = {"phi3long": (p3.HD, SHORT8, LONG8, False), "phi4mini": (int(p3.HD * 0.75), SHORT6, LONG6, True)}
    for name, (rot, short, long, tied) in variants.items():
        for T in (24, 64):
            logits, ppl = forward(T, rot, short, long, tied)
            print(f"{name} T={T}: ppl over the {T - 1} next tokens = {ppl:.6f}")
            rows = logits[-LAST:].flatten().tolist()
            with open(os.path.join(out, f"{name}_{T}.f32"), "wb") as f:
                f.write(struct.pack("<%df" % (len(rows) + 1), *rows, ppl))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""make_llama3_reference.py - torch reference for the Llama 3.2-style fixture of tests/test_arch_llama3.c.

    /usr/bin/python3 scripts/make_llama3_reference.py     # writes tests/data/llama3-tiny/logits.f32

The fixture is ../shared/models/tiny-llama-kjv (a trained LlamaForCausalLM: hidden 256, 8 heads of
32, 4 layers, vocabulary 2048, BF16) changed as Llama 3.2 1B/3B read: config.json gets
rope_scaling {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
"original_max_position_embeddings": 64, "rope_type": "llama3"} (the original context shrunk to
64 so that with head_dim 32 and theta 10000 every branch of the llama3 rule is taken: factor 1,
smoothed and factor 8), rope_theta 10000 kept, tie_word_embeddings true and lm_head.weight dropped
(the output is embed_tokens), and the tokenizer is Llama 3's byte-level BPE with its split regex
(tests/data/bpe-llama3: tokenizer.json, tokenizer_config.json; pre-tokenizer llama-bpe).

The forward is transformers' modeling_llama.py in float32 from the BF16 weights (LlamaRMSNorm,
rotate_half rope with modeling_rope_utils._compute_llama3_parameters' inverse frequencies,
grouped-query attention, SiLU-gated MLP, tied head). Output: the logits of the last 8 of 64 tokens
[1] + [(i*37 + 11) mod 2048 for i in 1..63] (8 x 2048 float32), then the perplexity of the 63 next
tokens (one float32), little-endian.
"""
import json
import math
import os
import struct

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "models", "tiny-llama-kjv")
T, LAST = 64, 8
FACTOR, LOW, HIGH, ORIG = 8.0, 1.0, 4.0, 64


def load(path):
    import torch
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            assert info["dtype"] == "BF16"
            t = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).reshape(info["shape"])
            out[name] = t.float()
    return out


def main():
    import torch
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    W = load(os.path.join(SRC, "model.safetensors"))
    E, H, KV, L, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"], cfg["vocab_size"]
    HD, EPS, THETA = E // H, cfg["rms_norm_eps"], cfg["rope_theta"]
    toks = torch.tensor([1] + [(i * 37 + 11) % V for i in range(1, T)])

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))

    def rotate_half(x):
        return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)

    # _compute_llama3_parameters
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
    low_wl, high_wl = ORIG / LOW, ORIG / HIGH
    wavelen = 2 * math.pi / inv_freq
    inv_l = torch.where(wavelen > low_wl, inv_freq / FACTOR, inv_freq)
    smooth = (ORIG / wavelen - LOW) / (HIGH - LOW)
    smoothed = (1 - smooth) * inv_l / FACTOR + smooth * inv_l
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    inv_l = torch.where(medium, smoothed, inv_l)
    print("llama3 factors:", [round(float(a / b), 4) for a, b in zip(inv_freq, inv_l)])
    ang = torch.outer(torch.arange(T).float(), inv_l)
    emb = torch.cat((ang, ang), -1)
    cos, sin = emb.cos(), emb.sin()

    x = W["model.embed_tokens.weight"][toks]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, H, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, HD).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        a = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, H * HD) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    logits = rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T  # tied
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, toks[1:, None]).mean()
    ppl = float(torch.exp(nll))
    print(f"llama3 tiny: ppl over the {T - 1} next tokens = {ppl:.6f}")
    os.makedirs("tests/data/llama3-tiny", exist_ok=True)
    rows = logits[-LAST:].flatten().tolist()
    with open("tests/data/llama3-tiny/logits.f32", "wb") as f:
        f.write(struct.pack("<%df" % (len(rows) + 1), *rows, ppl))


if __name__ == "__main__":
    main()

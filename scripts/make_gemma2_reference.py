#!/usr/bin/python3
"""make_gemma2_reference.py - the tiny Gemma 2 fixture of tests/testlib.c (tl_make_gemma2_tiny) and
its torch reference logits.

    /usr/bin/python3 scripts/make_gemma2_reference.py             # writes tests/data/gemma2-tiny/*.f32
    /usr/bin/python3 scripts/make_gemma2_reference.py --fixture DIR TOKENIZER_DIR
                                                                  # writes the HF directory itself

The model: Gemma2ForCausalLM with gemma-2-2b's config keys, sizes shrunk (hidden 64, 4 heads of
head_dim 32 - attention width 128 differs from hidden_size -, 2 KV heads, FF 96, 2 layers, rope
theta 10000, eps 1e-6, query_pre_attn_scalar 32 = head_dim, as in the released 2B/9B configs),
vocabulary 2048 (the SentencePiece tokenizer of ../shared/models/tiny-llama-kjv stands in for
Gemma's), lm_head tied. Values chosen so that every Gemma 2 operation shows in the logits:
sliding_window 8 (< the 24 reference tokens: layer 0 is a sliding layer, layer 1 global),
attn_logit_softcapping 2.0 and final_logit_softcapping 3.0 (the scores and logits reach
several times those, so tanh bends them). Tensor names are those transformers' Gemma2ForCausalLM
saves (modeling_gemma2.py): per layer input_layernorm, self_attn.{q,k,v,o}_proj,
post_attention_layernorm, pre_feedforward_layernorm, mlp.{gate,up,down}_proj,
post_feedforward_layernorm; model.embed_tokens, model.norm.

Weights come from an integer recipe, exactly representable in float32, that testlib.c repeats:
tensors in the order below, tensor i seeded with s = 1000 + i; for each element (row-major)
s = (s * 1103515245 + 12345) mod 2^31, v = ((s >> 8) mod 255) - 127; a norm weight (name
containing "norm") is v / 1024 (Gemma2RMSNorm multiplies by 1 + w), any other weight v / 512.

The reference forward is written from transformers' modeling_gemma2.py (eager attention) in
float32: embeddings times hidden_size**0.5; Gemma2RMSNorm (x * rsqrt(mean(x^2) + eps) * (1 + w));
rotate_half rope; scores q.k * query_pre_attn_scalar**-0.5, soft-capped (cap * tanh(s / cap)),
the causal mask and on sliding layers (even layer index) also keys i - j >= sliding_window masked;
o_proj, post_attention_layernorm, residual; pre_feedforward_layernorm, gelu_pytorch_tanh-gated
MLP, post_feedforward_layernorm, residual; final norm, the embedding as lm_head, final
soft-capping. Output: tests/data/gemma2-tiny/logits_24x2048.f32, the logits of the 24 tokens
[1] + [(i*37 + 11) mod 2048 for i in 1..23], little-endian float32, row = position.
"""
import json
import os
import shutil
import struct
import sys

HIDDEN, HEADS, KV_HEADS, HD, FF, LAYERS, VOCAB, THETA, EPS = 64, 4, 2, 32, 96, 2, 2048, 10000.0, 1e-6
WINDOW, ATTN_CAP, FINAL_CAP, QPAS = 8, 2.0, 3.0, 32


def names():
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.q_proj.weight", (HEADS * HD, HIDDEN)),
                (p + "self_attn.k_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.v_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HD)),
                (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "pre_feedforward_layernorm.weight", (HIDDEN,)),
                (p + "mlp.gate_proj.weight", (FF, HIDDEN)), (p + "mlp.up_proj.weight", (FF, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FF)),
                (p + "post_feedforward_layernorm.weight", (HIDDEN,))]
    out.append(("model.norm.weight", (HIDDEN,)))
    return out


def values(i, name, shape):
    n = 1
    for d in shape:
        n *= d
    s, vals = 1000 + i, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % (1 << 31)
        v = ((s >> 8) % 255) - 127
        vals.append(v / 1024 if "norm" in name else v / 512)
    return vals


def config():
    return {"architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "attn_logit_softcapping": ATTN_CAP, "bos_token_id": 1, "cache_implementation": "hybrid",
            "eos_token_id": 2, "final_logit_softcapping": FINAL_CAP, "head_dim": HD,
            "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": HIDDEN,
            "initializer_range": 0.02, "intermediate_size": FF, "max_position_embeddings": 256,
            "model_type": "gemma2", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
            "num_key_value_heads": KV_HEADS, "pad_token_id": 0, "query_pre_attn_scalar": QPAS, "rms_norm_eps": EPS,
            "rope_theta": THETA, "sliding_window": WINDOW, "torch_dtype": "float32",
            "transformers_version": "4.42.4", "use_cache": True, "vocab_size": VOCAB}


def write_fixture(out, tokdir):
    os.makedirs(out, exist_ok=True)
    for f in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(tokdir, f), os.path.join(out, f))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(), f, indent=2)
    header, blobs, off = {}, [], 0
    for i, (n, shape) in enumerate(names()):
        b = struct.pack("<%df" % len(v := values(i, n, shape)), *v)
        header[n] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def reference():
    import torch
    W = {n: torch.tensor(values(i, n, s), dtype=torch.float32).reshape(s) for i, (n, s) in enumerate(names())}
    toks = torch.tensor([1] + [(i * 37 + 11) % VOCAB for i in range(1, 24)])
    T = len(toks)

    def rms(x, w):  # Gemma2RMSNorm
        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)) * (1.0 + w)

    def rotate_half(x):
        return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)

    def gelu_tanh(x):  # gelu_pytorch_tanh
        return torch.nn.functional.gelu(x, approximate="tanh")

    x = W["model.embed_tokens.weight"][toks] * torch.tensor(HIDDEN ** 0.5, dtype=torch.float32)
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    causal = torch.full((T, T), float("-inf")).triu(1)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    sliding = causal.masked_fill(i - j >= WINDOW, float("-inf"))
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, HEADS, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        s = q @ k.transpose(1, 2) * QPAS ** -0.5
        s = torch.tanh(s / ATTN_CAP) * ATTN_CAP
        s = s + (sliding if l % 2 == 0 else causal)
        a = torch.softmax(s, dim=-1) @ v
        o = a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        x = x + rms(o, W[p + "post_attention_layernorm.weight"])
        h = rms(x, W[p + "pre_feedforward_layernorm.weight"])
        g = gelu_tanh(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + rms(g @ W[p + "mlp.down_proj.weight"].T, W[p + "post_feedforward_layernorm.weight"])
    logits = rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T
    print(f"largest |logit| before capping {float(logits.abs().max()):.3f}")
    logits = torch.tanh(logits / FINAL_CAP) * FINAL_CAP
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, toks[1:, None]).mean()
    print(f"gemma2 tiny: ppl over the 23 next tokens = {float(torch.exp(nll)):.6f}")
    os.makedirs("tests/data/gemma2-tiny", exist_ok=True)
    with open(f"tests/data/gemma2-tiny/logits_24x{VOCAB}.f32", "wb") as f:
        f.write(struct.pack("<%df" % (T * VOCAB), *logits.flatten().tolist()))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3])
        return
    reference()


if __name__ == "__main__":
    main()

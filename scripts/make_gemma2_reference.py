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

Weights come from the integer recipe of fixture_common.py (testlib.c repeats it) with norm
weights v / 1024 (Gemma2RMSNorm multiplies by 1 + w).

The reference forward is written from transformers' modeling_gemma2.py (eager attention) in
float32: embeddings times hidden_size**0.5; Gemma2RMSNorm (x * rsqrt(mean(x^2) + eps) * (1 + w));
rotate_half rope; scores q.k * query_pre_attn_scalar**-0.5, soft-capped (cap * tanh(s / cap)),
the causal mask and on sliding layers (even layer index) also keys i - j >= sliding_window masked;
o_proj, post_attention_layernorm, residual; pre_feedforward_layernorm, gelu_pytorch_tanh-gated
MLP, post_feedforward_layernorm, residual; final norm, the embedding as lm_head, final
soft-capping. Output: tests/data/gemma2-tiny/logits_24x2048.f32, the logits of the 24 tokens
[1] + [(i*37 + 11) mod 2048 for i in 1..23], little-endian float32, row = position.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

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
    fc.write_hf_dir(out, config(), names(), norm_base=0.0,
                    copy=[(os.path.join(tokdir, f), f)
                          for f in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")])


def reference():
    import torch
    W = fc.weights(names(), norm_base=0.0)
    toks = fc.tokens(VOCAB)
    T = len(toks)

    def rms(x, w):  # Gemma2RMSNorm
        return fc.rms(x, w, EPS, one_plus=True)

    def gelu_tanh(x):  # gelu_pytorch_tanh
        return torch.nn.functional.gelu(x, approximate="tanh")

    x = W["model.embed_tokens.weight"][toks] * torch.tensor(HIDDEN ** 0.5, dtype=torch.float32)
    cos, sin = fc.rope_cos_sin(T, HD, THETA)
    causal = torch.full((T, T), float("-inf")).triu(1)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    sliding = causal.masked_fill(i - j >= WINDOW, float("-inf"))
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, HEADS, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = fc.rope(q, cos, sin), fc.rope(k, cos, sin)
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
    fc.save_logits(f"tests/data/gemma2-tiny/logits_24x{VOCAB}.f32", logits, toks, "gemma2 tiny")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3])
        return
    reference()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""make_qwen3_reference.py - the tiny Qwen3 fixture of tests/testlib.c (tl_make_qwen3_tiny) and
its torch reference logits.

    /usr/bin/python3 scripts/make_qwen3_reference.py             # writes tests/data/qwen3-tiny/*.f32
    /usr/bin/python3 scripts/make_qwen3_reference.py --fixture DIR [--untied]
                                                                  # writes the HF directory itself
                                                                  # (for llama.cpp's converter)

The model: Qwen3ForCausalLM with Qwen3-0.6B's config keys, sizes shrunk (hidden 64, 4 heads of
head_dim 32 - so the attention width 128 differs from hidden_size -, 2 KV heads, FF 96, 2
layers, rope theta 1e6, eps 1e-6), the 679-token Qwen2-style BPE tokenizer of
tests/data/bpe-qwen2, lm_head tied (tie_word_embeddings true) or not. Tensor names and shapes
are those transformers' Qwen3ForCausalLM saves (modeling_qwen3.py): per layer input_layernorm,
self_attn.{q,k,v,o}_proj (no biases: attention_bias false), self_attn.{q,k}_norm [head_dim],
post_attention_layernorm, mlp.{gate,up,down}_proj.

Weights come from an integer recipe, exactly representable in float32, that testlib.c repeats:
tensors in the order below, tensor i seeded with s = 1000 + i; for each element (row-major)
s = (s * 1103515245 + 12345) mod 2^31, v = ((s >> 8) mod 255) - 127; a norm weight (name
containing "norm") is 1 + v / 1024, any other weight v / 512.

The reference forward is written from transformers' modeling_qwen3.py in float32:
Qwen3RMSNorm (x * rsqrt(mean(x^2) + eps) * w), q = q_norm(q_proj(h).view(.., head_dim)) and
likewise k (the per-head norm comes before rope), rotate_half rope, grouped-query attention
with scaling head_dim^-0.5 and the causal mask, o_proj, SiLU-gated MLP, final norm, lm_head (or
the embedding when tied). Output: tests/data/qwen3-tiny/logits_{tied,untied}_24x679.f32, the
logits of the 24 tokens [1] + [(i*37 + 11) mod 679 for i in 1..23], little-endian float32, row
= position.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

HIDDEN, HEADS, KV_HEADS, HD, FF, LAYERS, VOCAB, THETA, EPS = 64, 4, 2, 32, 96, 2, 679, 1e6, 1e-6


def names(tied):
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.q_proj.weight", (HEADS * HD, HIDDEN)),
                (p + "self_attn.k_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.v_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HD)),
                (p + "self_attn.q_norm.weight", (HD,)),
                (p + "self_attn.k_norm.weight", (HD,)),
                (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "mlp.gate_proj.weight", (FF, HIDDEN)), (p + "mlp.up_proj.weight", (FF, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FF))]
    out.append(("model.norm.weight", (HIDDEN,)))
    if not tied:
        out.append(("lm_head.weight", (VOCAB, HIDDEN)))
    return out


def config(tied):
    return {"architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 676, "eos_token_id": 678, "head_dim": HD, "hidden_act": "silu", "hidden_size": HIDDEN,
            "initializer_range": 0.02, "intermediate_size": FF, "max_position_embeddings": 256,
            "max_window_layers": LAYERS, "model_type": "qwen3", "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "rms_norm_eps": EPS, "rope_scaling": None,
            "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": tied, "torch_dtype": "float32",
            "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False, "vocab_size": VOCAB}


def write_fixture(out, tied):
    """The HF directory: config.json, model.safetensors (F32, in recipe order), tokenizer files."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "bpe-qwen2")
    tcfg = {"add_bos_token": False, "add_prefix_space": False, "bos_token": None,
            "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                             "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                             "{{ '<|im_start|>assistant\\n' }}{% endif %}",
            "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    fc.write_hf_dir(out, config(tied), names(tied), copy=[(os.path.join(src, "tokenizer.json"), "tokenizer.json")],
                    tokenizer_config=tcfg)


def reference(tied):
    import torch
    W = fc.weights(names(tied))
    toks = fc.tokens(VOCAB)
    T = len(toks)

    def rms(x, w):  # Qwen3RMSNorm
        return fc.rms(x, w, EPS)

    x = W["model.embed_tokens.weight"][toks]
    cos, sin = fc.rope_cos_sin(T, HD, THETA)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rms((h @ W[p + "self_attn.q_proj.weight"].T).view(T, HEADS, HD), W[p + "self_attn.q_norm.weight"]).transpose(0, 1)
        k = rms((h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV_HEADS, HD), W[p + "self_attn.k_norm.weight"]).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = fc.rope(q, cos, sin), fc.rope(k, cos, sin)
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        a = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    logits = rms(x, W["model.norm.weight"]) @ head.T
    fc.save_logits(f"tests/data/qwen3-tiny/logits_{'tied' if tied else 'untied'}_24x{VOCAB}.f32", logits, toks, f"qwen3 tiny ({'tied' if tied else 'untied'})")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], "--untied" not in sys.argv[3:])
        return
    reference(True)
    reference(False)


if __name__ == "__main__":
    main()

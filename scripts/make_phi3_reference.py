#!/usr/bin/python3
"""make_phi3_reference.py - the tiny Phi-3 fixture of tests/testlib.c (tl_make_phi3_tiny) and its
torch reference logits.

    /usr/bin/python3 scripts/make_phi3_reference.py              # writes tests/data/phi3-tiny/*.f32
    /usr/bin/python3 scripts/make_phi3_reference.py --fixture DIR TOKENIZER_MODEL
                                                                   # writes the HF directory itself
                                                                   # (for llama.cpp's converter)

The model: Phi3ForCausalLM with Phi-3-mini-4k-instruct's config keys, sizes shrunk (hidden 64, 4
heads of head_dim 16, 2 KV heads - Phi-4-mini's grouped-query layout -, FF 96, 2 layers, rope
theta 10000, eps 1e-5, max_position_embeddings = original_max_position_embeddings = 4096,
sliding_window 2047, rope_scaling null, lm_head untied) and vocabulary 2048, the size of the
Llama SPM tokenizer.model of ../shared/models/tiny-llama-kjv that stands in for Phi-3's (the
same SentencePiece format). Tensor names and shapes are those transformers' Phi3ForCausalLM
saves (modeling_phi3.py): per layer input_layernorm, self_attn.qkv_proj [(4 + 2*2)*16, 64]
(q rows, then k, then v), self_attn.o_proj, post_attention_layernorm, mlp.gate_up_proj
[2*96, 64] (gate rows, then up: Phi3MLP chunks the output in two, gate first), mlp.down_proj;
no biases.

Weights come from the integer recipe of make_qwen3_reference.py, exactly representable in
float32, that testlib.c repeats: tensors in the order below, tensor i seeded with s = 1000 + i;
for each element (row-major) s = (s * 1103515245 + 12345) mod 2^31, v = ((s >> 8) mod 255) -
127; a norm weight (name containing "norm") is 1 + v / 1024, any other weight v / 512.

The reference forward is written from transformers' modeling_phi3.py in float32: Phi3RMSNorm,
qkv = qkv_proj(h) split at n_heads*head_dim and + n_kv*head_dim, rotate_half rope over the
whole head (partial_rotary_factor 1), grouped-query attention with scaling head_dim^-0.5 and
the causal mask (the 2047 sliding window does not reach within 24 tokens), o_proj, gate_up_proj
-> chunk(2) -> up * silu(gate), down_proj, final norm, lm_head. Output:
tests/data/phi3-tiny/logits_24x2048.f32, the logits of the 24 tokens [1] + [(i*37 + 11) mod 2048
for i in 1..23], little-endian float32, row = position.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

HIDDEN, HEADS, KV_HEADS, HD, FF, LAYERS, VOCAB, THETA, EPS = 64, 4, 2, 16, 96, 2, 2048, 10000.0, 1e-5
QKV = (HEADS + 2 * KV_HEADS) * HD


def names():
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.qkv_proj.weight", (QKV, HIDDEN)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HD)),
                (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "mlp.gate_up_proj.weight", (2 * FF, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FF))]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def config():
    # Phi-3-mini-4k-instruct's config.json keys (transformers 4.40+), sizes shrunk
    return {"architectures": ["Phi3ForCausalLM"],
            "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
            "eos_token_id": 2, "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02,
            "intermediate_size": FF, "max_position_embeddings": 4096, "model_type": "phi3",
            "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS,
            "original_max_position_embeddings": 4096, "pad_token_id": 0, "resid_pdrop": 0.0, "rms_norm_eps": EPS,
            "rope_scaling": None, "rope_theta": THETA, "sliding_window": 2047, "tie_word_embeddings": False,
            "torch_dtype": "float32", "transformers_version": "4.40.2", "use_cache": True,
            "vocab_size": VOCAB}


TOKENIZER_CONFIG = {
    "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "clean_up_tokenization_spaces": False,
    "chat_template": "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
                     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
                     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + "
                     "message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
                     "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
    "eos_token": "</s>", "legacy": False, "model_max_length": 4096, "pad_token": "<unk>", "padding_side": "left",
    "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False}


def write_fixture(out, tokenizer_model):
    """The HF directory: config.json, model.safetensors (F32, in recipe order), tokenizer files."""
    fc.write_hf_dir(out, config(), names(), copy=[(tokenizer_model, "tokenizer.model")],
                    tokenizer_config=TOKENIZER_CONFIG)


def reference():
    import torch
    W = fc.weights(names())
    toks = fc.tokens(VOCAB)
    T = len(toks)

    def rms(x, w):  # Phi3RMSNorm
        return fc.rms(x, w, EPS)

    x = W["model.embed_tokens.weight"][toks]
    cos, sin = fc.rope_cos_sin(T, HD, THETA)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        qkv = h @ W[p + "self_attn.qkv_proj.weight"].T
        qp = HEADS * HD
        q = qkv[..., :qp].view(T, HEADS, HD).transpose(0, 1)
        k = qkv[..., qp:qp + KV_HEADS * HD].view(T, KV_HEADS, HD).transpose(0, 1)
        v = qkv[..., qp + KV_HEADS * HD:].view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = fc.rope(q, cos, sin), fc.rope(k, cos, sin)
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        a = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        gate, up = (h @ W[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        x = x + (up * torch.nn.functional.silu(gate)) @ W[p + "mlp.down_proj.weight"].T
    logits = rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].T
    fc.save_logits(f"tests/data/phi3-tiny/logits_24x{VOCAB}.f32", logits, toks, "phi3 tiny")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3])
        return
    reference()


if __name__ == "__main__":
    main()

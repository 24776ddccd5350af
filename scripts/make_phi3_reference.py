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
import json
import os
import shutil
import struct
import sys

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


def values(i, name, shape):
    n = 1
    for d in shape:
        n *= d
    s, vals = 1000 + i, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % (1 << 31)
        v = ((s >> 8) % 255) - 127
        vals.append(1 + v / 1024 if "norm" in name else v / 512)
    return vals


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
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(tokenizer_model, os.path.join(out, "tokenizer.model"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(TOKENIZER_CONFIG, f, indent=1)
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

    def rms(x, w):  # Phi3RMSNorm
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))

    def rotate_half(x):
        return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)

    x = W["model.embed_tokens.weight"][toks]
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        qkv = h @ W[p + "self_attn.qkv_proj.weight"].T
        qp = HEADS * HD
        q = qkv[..., :qp].view(T, HEADS, HD).transpose(0, 1)
        k = qkv[..., qp:qp + KV_HEADS * HD].view(T, KV_HEADS, HD).transpose(0, 1)
        v = qkv[..., qp + KV_HEADS * HD:].view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        a = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        gate, up = (h @ W[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        x = x + (up * torch.nn.functional.silu(gate)) @ W[p + "mlp.down_proj.weight"].T
    logits = rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].T
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, toks[1:, None]).mean()
    print(f"phi3 tiny: ppl over the 23 next tokens = {float(torch.exp(nll)):.6f}")
    os.makedirs("tests/data/phi3-tiny", exist_ok=True)
    with open(f"tests/data/phi3-tiny/logits_24x{VOCAB}.f32", "wb") as f:
        f.write(struct.pack("<%df" % (T * VOCAB), *logits.flatten().tolist()))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3])
        return
    reference()


if __name__ == "__main__":
    main()

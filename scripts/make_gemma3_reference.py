#!/usr/bin/python3
"""make_gemma3_reference.py - the tiny Gemma 3 fixtures of tests/testlib.c (tl_make_gemma3_tiny) and
their torch reference logits.

    /usr/bin/python3 scripts/make_gemma3_reference.py             # writes tests/data/gemma3-tiny/*.f32
    /usr/bin/python3 scripts/make_gemma3_reference.py --fixture DIR TOKENIZER_DIR [--vlm]
                                                                  # writes the HF directory itself

The model: Gemma3ForCausalLM with gemma-3's text config keys (Gemma3TextConfig), sizes shrunk
(hidden 64, 4 heads of head_dim 32, 2 KV heads, FF 96, 6 layers so that the sixth is a global one,
eps 1e-6, query_pre_attn_scalar 32 = head_dim as in the released 1B/4B/12B configs), vocabulary
2048 (the SentencePiece tokenizer of ../shared/models/tiny-llama-kjv stands in for Gemma's),
lm_head tied. Values chosen so that every Gemma 3 operation shows in the logits: sliding_window 8
(< the 24 reference tokens) on layers 0-4 with rope_local_base_freq 10000, layer 5 global with
rope_theta 1e6 and linear rope scaling factor 8 (gemma-3-4b's), no attention soft-capping,
final_logit_softcapping null (as released). Tensor names are those transformers' Gemma3ForCausalLM
saves (modeling_gemma3.py): per layer input_layernorm, self_attn.{q,k,v,o}_proj,
self_attn.{q,k}_norm, post_attention_layernorm, pre_feedforward_layernorm, mlp.{gate,up,down}_proj,
post_feedforward_layernorm; model.embed_tokens, model.norm. With --vlm the same weights as a
Gemma3ForConditionalGeneration checkpoint (transformers 4.50's layout): config with text_config
and vision_config, the text tensors under language_model.model.*, plus a few vision_tower.* and
multi_modal_projector.* tensors (recipe seeds after the text model's) that the converter skips.

Weights: the integer recipe of fixture_common.py with norm weights v / 1024 (Gemma3RMSNorm
multiplies by 1 + w).

The reference forward is written from transformers' modeling_gemma3.py (eager attention) in
float32: embeddings times hidden_size**0.5; Gemma3RMSNorm (x * rsqrt(mean(x^2) + eps) * (1 + w));
q_norm / k_norm per head after the projections, before rope; rotate_half rope with the local
base on sliding layers (rotary_emb_local, unscaled) and the global base with linear scaling
(inv_freq / factor) on full-attention layers; scores q.k * query_pre_attn_scalar**-0.5, the causal
mask and on sliding layers also keys i - j >= sliding_window masked; o_proj,
post_attention_layernorm, residual; pre_feedforward_layernorm, gelu_pytorch_tanh-gated MLP,
post_feedforward_layernorm, residual; final norm, the embedding as lm_head. Output:
tests/data/gemma3-tiny/logits_24x2048.f32, the logits of the 24 tokens [1] + [(i*37 + 11) mod 2048
for i in 1..23], little-endian float32, row = position.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

HIDDEN, HEADS, KV_HEADS, HD, FF, LAYERS, VOCAB, EPS = 64, 4, 2, 32, 96, 6, 2048, 1e-6
THETA, LOCAL_THETA, FACTOR, WINDOW, PATTERN, QPAS = 1000000.0, 10000.0, 8.0, 8, 6, 32
VISION = [("vision_tower.vision_model.embeddings.position_embedding.weight", (4, 32)),
          ("vision_tower.vision_model.post_layernorm.weight", (32,)),
          ("multi_modal_projector.mm_input_projection_weight", (32, HIDDEN)),
          ("multi_modal_projector.mm_soft_emb_norm.weight", (32,))]


def names():
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.q_proj.weight", (HEADS * HD, HIDDEN)),
                (p + "self_attn.k_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.v_proj.weight", (KV_HEADS * HD, HIDDEN)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HD)),
                (p + "self_attn.q_norm.weight", (HD,)), (p + "self_attn.k_norm.weight", (HD,)),
                (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "pre_feedforward_layernorm.weight", (HIDDEN,)),
                (p + "mlp.gate_proj.weight", (FF, HIDDEN)), (p + "mlp.up_proj.weight", (FF, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FF)),
                (p + "post_feedforward_layernorm.weight", (HIDDEN,))]
    out.append(("model.norm.weight", (HIDDEN,)))
    return out


def text_config():
    return {"architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "attn_logit_softcapping": None, "bos_token_id": 1, "cache_implementation": "hybrid", "eos_token_id": 2,
            "final_logit_softcapping": None, "head_dim": HD, "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": FF,
            "max_position_embeddings": 256, "model_type": "gemma3_text", "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "pad_token_id": 0,
            "query_pre_attn_scalar": QPAS, "rms_norm_eps": EPS, "rope_local_base_freq": LOCAL_THETA,
            "rope_scaling": {"factor": FACTOR, "rope_type": "linear"}, "rope_theta": THETA,
            "sliding_window": WINDOW, "sliding_window_pattern": PATTERN, "torch_dtype": "float32",
            "transformers_version": "4.50.0", "use_cache": True, "vocab_size": VOCAB}


def vlm_config():
    tc = text_config()
    del tc["architectures"]
    return {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 3, "eoi_token_index": 4,
            "eos_token_id": 2, "image_token_index": 5, "initializer_range": 0.02, "mm_tokens_per_image": 4,
            "model_type": "gemma3", "text_config": tc, "torch_dtype": "float32",
            "transformers_version": "4.50.0",
            "vision_config": {"hidden_size": 32, "image_size": 28, "intermediate_size": 64,
                              "model_type": "siglip_vision_model", "num_attention_heads": 2, "num_hidden_layers": 1,
                              "patch_size": 14, "vision_use_head": False}}


def write_fixture(out, tokdir, vlm):
    copy = [(os.path.join(tokdir, f), f) for f in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")]
    if not vlm:
        fc.write_hf_dir(out, text_config(), names(), norm_base=0.0, copy=copy)
        return
    fc.write_hf_dir(out, vlm_config(), [("language_model." + n, s) for n, s in names()] + VISION, norm_base=0.0,
                    copy=copy)


def reference():
    import torch
    W = fc.weights(names(), norm_base=0.0)
    toks = fc.tokens(VOCAB)
    T = len(toks)

    def rms(x, w):  # Gemma3RMSNorm
        return fc.rms(x, w, EPS, one_plus=True)

    x = W["model.embed_tokens.weight"][toks] * torch.tensor(HIDDEN ** 0.5, dtype=torch.float32)
    glob = fc.rope_cos_sin(T, HD, THETA, FACTOR)
    local = fc.rope_cos_sin(T, HD, LOCAL_THETA)
    causal = torch.full((T, T), float("-inf")).triu(1)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    sliding_mask = causal.masked_fill(i - j >= WINDOW, float("-inf"))
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        sliding = (l + 1) % PATTERN != 0
        cos, sin = local if sliding else glob
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rms((h @ W[p + "self_attn.q_proj.weight"].T).view(T, HEADS, HD), W[p + "self_attn.q_norm.weight"])
        k = rms((h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV_HEADS, HD), W[p + "self_attn.k_norm.weight"])
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV_HEADS, HD).transpose(0, 1)
        q, k = fc.rope(q.transpose(0, 1), cos, sin), fc.rope(k.transpose(0, 1), cos, sin)
        k, v = k.repeat_interleave(HEADS // KV_HEADS, 0), v.repeat_interleave(HEADS // KV_HEADS, 0)
        s = q @ k.transpose(1, 2) * QPAS ** -0.5 + (sliding_mask if sliding else causal)
        a = torch.softmax(s, dim=-1) @ v
        o = a.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        x = x + rms(o, W[p + "post_attention_layernorm.weight"])
        h = rms(x, W[p + "pre_feedforward_layernorm.weight"])
        g = torch.nn.functional.gelu(h @ W[p + "mlp.gate_proj.weight"].T, approximate="tanh")
        g = g * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + rms(g @ W[p + "mlp.down_proj.weight"].T, W[p + "post_feedforward_layernorm.weight"])
    logits = rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T
    fc.save_logits(f"tests/data/gemma3-tiny/logits_24x{VOCAB}.f32", logits, toks, "gemma3 tiny")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3], "--vlm" in sys.argv[4:])
        return
    reference()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""make_moe_reference.py - the tiny mixture-of-experts fixtures of tests/testlib.c
(tl_make_mixtral_tiny, tl_make_qwen3moe_tiny) and their torch reference logits.

    /usr/bin/python3 scripts/make_moe_reference.py                 # writes tests/data/{mixtral,qwen3moe}-tiny/*.f32
    /usr/bin/python3 scripts/make_moe_reference.py --fixture mixtral DIR
    /usr/bin/python3 scripts/make_moe_reference.py --fixture qwen3moe DIR
                                                                    # the HF directory itself (for llama.cpp's
                                                                    # converter and llama-perplexity)

Mixtral (MixtralForCausalLM, Mixtral-8x7B-v0.1's config keys, sizes shrunk): hidden 64, 4 heads
of 16, 2 KV heads, 2 layers, 4 experts of intermediate_size 96, 2 used per token, rope theta 1e6,
eps 1e-5, untied lm_head, the 2048-token SentencePiece tokenizer of models/tiny-llama-kjv. Per layer
(transformers' modeling_mixtral.py names): input_layernorm, self_attn.{q,k,v,o}_proj,
post_attention_layernorm, block_sparse_moe.gate [experts, hidden], block_sparse_moe.experts.E.{w1,
w2, w3} (w1 gate, w3 up [96, 64], w2 down [64, 96]).

Qwen3-MoE (Qwen3MoeForCausalLM, Qwen3-30B-A3B's config keys, sizes shrunk): hidden 64, 4 heads of
head_dim 32, 2 KV heads, 2 layers, 8 experts of moe_intermediate_size 64, 2 used per token,
norm_topk_prob true, intermediate_size 96 (unused: every layer is sparse), rope theta 1e6, eps
1e-6, untied lm_head, the 679-token Qwen2 BPE tokenizer of tests/data/bpe-qwen2. Per layer
(modeling_qwen3_moe.py): input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm,
post_attention_layernorm, mlp.gate [experts, hidden], mlp.experts.E.{gate,up,down}_proj.

Weights: fixture_common.py's integer recipe (tensors in the order of names()).

The reference forward is written from modeling_mixtral.py / modeling_qwen3_moe.py in float32:
attention as in the dense models (Qwen3-MoE with the per-head q/k norms before rope); the sparse
block: router_logits = h @ gate.T, softmax over the experts in float, top-k, the k weights divided
by their sum (Mixtral always, Qwen3-MoE when norm_topk_prob), and each token's output the sum over
its k experts of weight * down(silu(gate(h)) * up(h)). Output: tests/data/<arch>-tiny/
logits_24x<vocab>.f32 (the 24 reference tokens, little-endian float32, row = position).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

ARCHS = {
    "mixtral": dict(hidden=64, heads=4, kv=2, hd=16, ff=96, ff_exp=96, layers=2, vocab=2048, experts=4, used=2,
                    theta=1e6, eps=1e-5, qk_norm=False, norm_topk=True),
    "qwen3moe": dict(hidden=64, heads=4, kv=2, hd=32, ff=96, ff_exp=64, layers=2, vocab=679, experts=8, used=2,
                     theta=1e6, eps=1e-6, qk_norm=True, norm_topk=True),
}


def expert_names(arch, E):
    a = ARCHS[arch]
    if arch == "mixtral":
        return [(f"block_sparse_moe.experts.{e}.{w}.weight", shape) for e in range(E)
                for w, shape in (("w1", (a["ff_exp"], a["hidden"])), ("w2", (a["hidden"], a["ff_exp"])),
                                 ("w3", (a["ff_exp"], a["hidden"])))]
    return [(f"mlp.experts.{e}.{w}.weight", shape) for e in range(E)
            for w, shape in (("gate_proj", (a["ff_exp"], a["hidden"])), ("up_proj", (a["ff_exp"], a["hidden"])),
                             ("down_proj", (a["hidden"], a["ff_exp"])))]


def names(arch):
    a = ARCHS[arch]
    H, Q, KV = a["hidden"], a["heads"] * a["hd"], a["kv"] * a["hd"]
    gate = "block_sparse_moe.gate.weight" if arch == "mixtral" else "mlp.gate.weight"
    out = [("model.embed_tokens.weight", (a["vocab"], H))]
    for l in range(a["layers"]):
        p = f"model.layers.{l}."
        layer = [("input_layernorm.weight", (H,)), ("self_attn.q_proj.weight", (Q, H)),
                 ("self_attn.k_proj.weight", (KV, H)), ("self_attn.v_proj.weight", (KV, H)),
                 ("self_attn.o_proj.weight", (H, Q))]
        if a["qk_norm"]:
            layer += [("self_attn.q_norm.weight", (a["hd"],)), ("self_attn.k_norm.weight", (a["hd"],))]
        layer += [("post_attention_layernorm.weight", (H,)), (gate, (a["experts"], H))]
        layer += expert_names(arch, a["experts"])
        out += [(p + n, s) for n, s in layer]
    out += [("model.norm.weight", (H,)), ("lm_head.weight", (a["vocab"], H))]
    return out


def config(arch):
    a = ARCHS[arch]
    if arch == "mixtral":
        return {"architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
                "eos_token_id": 2, "hidden_act": "silu", "hidden_size": a["hidden"], "initializer_range": 0.02,
                "intermediate_size": a["ff"], "max_position_embeddings": 256, "model_type": "mixtral",
                "num_attention_heads": a["heads"], "num_experts_per_tok": a["used"],
                "num_hidden_layers": a["layers"], "num_key_value_heads": a["kv"],
                "num_local_experts": a["experts"], "output_router_logits": False, "rms_norm_eps": a["eps"],
                "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02, "sliding_window": None,
                "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.36.0.dev0",
                "use_cache": True, "vocab_size": a["vocab"]}
    return {"architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 676, "decoder_sparse_step": 1, "eos_token_id": 678, "head_dim": a["hd"],
            "hidden_act": "silu", "hidden_size": a["hidden"], "initializer_range": 0.02,
            "intermediate_size": a["ff"], "max_position_embeddings": 256, "max_window_layers": a["layers"],
            "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": a["ff_exp"],
            "norm_topk_prob": True, "num_attention_heads": a["heads"], "num_experts": a["experts"],
            "num_experts_per_tok": a["used"], "num_hidden_layers": a["layers"], "num_key_value_heads": a["kv"],
            "output_router_logits": False, "rms_norm_eps": a["eps"], "rope_scaling": None, "rope_theta": 1000000.0,
            "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": False,
            "torch_dtype": "float32", "transformers_version": "4.51.0", "use_cache": True,
            "use_sliding_window": False, "vocab_size": a["vocab"]}


def write_fixture(arch, out):
    if arch == "mixtral":
        assets = os.environ.get("SMELT_ASSETS", "/work/shared")
        kjv = os.path.join(assets, "models", "tiny-llama-kjv")
        copy = [(os.path.join(kjv, f), f) for f in ("tokenizer.model", "tokenizer_config.json",
                                                     "special_tokens_map.json")]
        fc.write_hf_dir(out, config(arch), names(arch), copy=copy)
        return
    src = os.path.join(HERE, "..", "tests", "data", "bpe-qwen2", "tokenizer.json")
    tcfg = {"add_bos_token": False, "bos_token": None, "eos_token": "<|im_end|>",
            "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    fc.write_hf_dir(out, config(arch), names(arch), copy=[(src, "tokenizer.json")], tokenizer_config=tcfg)


def moe(h, W, p, arch):
    """The sparse block of modeling_mixtral.py / modeling_qwen3_moe.py for h [T, hidden]."""
    import torch
    a = ARCHS[arch]
    if arch == "mixtral":
        gate, wn = W[p + "block_sparse_moe.gate.weight"], p + "block_sparse_moe.experts.%d.%s.weight"
        g_, u_, d_ = "w1", "w3", "w2"
    else:
        gate, wn = W[p + "mlp.gate.weight"], p + "mlp.experts.%d.%s.weight"
        g_, u_, d_ = "gate_proj", "up_proj", "down_proj"
    probs = torch.softmax(h @ gate.T, dim=1, dtype=torch.float)
    w, sel = torch.topk(probs, a["used"], dim=-1)
    if a["norm_topk"]:
        w = w / w.sum(dim=-1, keepdim=True)
    out = torch.zeros_like(h)
    for e in range(a["experts"]):
        tok, slot = torch.where(sel == e)
        if len(tok) == 0:
            continue
        x = h[tok]
        y = (torch.nn.functional.silu(x @ W[wn % (e, g_)].T) * (x @ W[wn % (e, u_)].T)) @ W[wn % (e, d_)].T
        out.index_add_(0, tok, y * w[tok, slot, None])
    return out


def reference(arch):
    import torch
    a = ARCHS[arch]
    W = fc.weights(names(arch))
    toks = fc.tokens(a["vocab"])
    T, HEADS, KV, HD = len(toks), a["heads"], a["kv"], a["hd"]

    def rms(x, w):
        return fc.rms(x, w, a["eps"])

    x = W["model.embed_tokens.weight"][toks]
    cos, sin = fc.rope_cos_sin(T, HD, a["theta"])
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(a["layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, HEADS, HD)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, HD)
        if a["qk_norm"]:
            q, k = rms(q, W[p + "self_attn.q_norm.weight"]), rms(k, W[p + "self_attn.k_norm.weight"])
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, HD).transpose(0, 1)
        q, k = fc.rope(q.transpose(0, 1), cos, sin), fc.rope(k.transpose(0, 1), cos, sin)
        k, v = k.repeat_interleave(HEADS // KV, 0), v.repeat_interleave(HEADS // KV, 0)
        att = torch.softmax(q @ k.transpose(1, 2) * HD ** -0.5 + mask, dim=-1) @ v
        x = x + att.transpose(0, 1).reshape(T, HEADS * HD) @ W[p + "self_attn.o_proj.weight"].T
        x = x + moe(rms(x, W[p + "post_attention_layernorm.weight"]), W, p, arch)
    logits = rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].T
    fc.save_logits(os.path.join(HERE, "..", "tests", "data", f"{arch}-tiny", f"logits_24x{a['vocab']}.f32"), logits,
                   toks, f"{arch} tiny")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--fixture":
        write_fixture(sys.argv[2], sys.argv[3])
        return
    for arch in ARCHS:
        reference(arch)


if __name__ == "__main__":
    main()

/* tensor_names.c - Hugging Face <-> GGUF tensor names for the Llama-family layout, and the
 * list of tensors (with shapes) a model with given hyperparameters must have.
 *
 * Names follow gguf-py's tensor_mapping.py for LLAMA / QWEN2: model.embed_tokens ->
 * token_embd, model.layers.N.self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output},
 * mlp.{gate,up,down}_proj -> blk.N.ffn_{gate,up,down}, input_layernorm -> attn_norm,
 * post_attention_layernorm -> ffn_norm, model.norm -> output_norm, lm_head -> output. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer_name {
    const char *hf;    /* after "model.layers.N." and before ".weight"/".bias" */
    const char *gguf;  /* after "blk.N." */
    int permute;       /* SM_MAP_PERMUTE_Q / _K when the architecture stores rotate_half rows */
    bool norm;
} layer_name;

static const layer_name LAYER[] = {
    {"input_layernorm", "attn_norm", 0, true},
    {"self_attn.q_proj", "attn_q", SM_MAP_PERMUTE_Q, false},
    {"self_attn.k_proj", "attn_k", SM_MAP_PERMUTE_K, false},
    {"self_attn.v_proj", "attn_v", 0, false},
    {"self_attn.o_proj", "attn_output", 0, false},
    {"post_attention_layernorm", "ffn_norm", 0, true},
    {"mlp.gate_proj", "ffn_gate", 0, false},
    {"mlp.up_proj", "ffn_up", 0, false},
    {"mlp.down_proj", "ffn_down", 0, false},
};
#define N_LAYER (sizeof LAYER / sizeof LAYER[0])

static const struct { const char *hf, *gguf; bool norm; } GLOBAL[] = {
    {"model.embed_tokens", "token_embd", false},
    {"model.norm", "output_norm", true},
    {"lm_head", "output", false},
};
#define N_GLOBAL (sizeof GLOBAL / sizeof GLOBAL[0])

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* snprintf's result fit in cap: 0, else -1 with an error. */
static int fits(int k, size_t cap) {
    if (k < 0 || (size_t)k >= cap) return sm_error("tensor name too long for the buffer");
    return 0;
}

/* Splits "X.weight" / "X.bias": returns the suffix (".weight"/".bias") and the stem length. */
static const char *split_suffix(const char *name, size_t *stem) {
    static const char *const SUF[] = {".weight", ".bias"};
    for (int i = 0; i < 2; i++)
        if (ends_with(name, SUF[i])) {
            *stem = strlen(name) - strlen(SUF[i]);
            return SUF[i];
        }
    return NULL;
}

int sm_map_hf_name(const sm_hparams *hp, const char *hf_name, char *gguf_name, size_t cap, int *flags) {
    *flags = 0;
    /* tensors llama.cpp's converter drops */
    if (ends_with(hf_name, ".rotary_emb.inv_freq") || ends_with(hf_name, ".attention.masked_bias") ||
        ends_with(hf_name, ".attention.bias"))
        return 0;
    size_t stem;
    const char *suf = split_suffix(hf_name, &stem);
    if (!suf) return sm_error("tensor \"%s\": not a known %s tensor", hf_name, hp->hf_arch[0] ? hp->hf_arch : hp->arch);
    bool bias = suf[1] == 'b';

    for (size_t i = 0; i < N_GLOBAL; i++)
        if (strlen(GLOBAL[i].hf) == stem && !memcmp(hf_name, GLOBAL[i].hf, stem)) {
            if (bias) break;
            if (!strcmp(GLOBAL[i].gguf, "output") && hp->tied_embeddings) return 0; /* tied: token_embd serves */
            if (fits(snprintf(gguf_name, cap, "%s%s", GLOBAL[i].gguf, suf), cap)) return -1;
            if (GLOBAL[i].norm) *flags |= SM_MAP_KEEP_F32;
            return 1;
        }

    static const char PREFIX[] = "model.layers.";
    if (!strncmp(hf_name, PREFIX, sizeof PREFIX - 1)) {
        const char *p = hf_name + sizeof PREFIX - 1;
        char *end;
        if (*p >= '0' && *p <= '9' && !(p[0] == '0' && p[1] >= '0' && p[1] <= '9')) {
            long n = strtol(p, &end, 10);
            if (*end == '.' && n >= 0 && n < 1000000) {
                const char *rest = end + 1;
                size_t rest_len = (size_t)(hf_name + stem - rest);
                for (size_t i = 0; i < N_LAYER; i++)
                    if (strlen(LAYER[i].hf) == rest_len && !memcmp(rest, LAYER[i].hf, rest_len)) {
                        if (n >= hp->n_layer)
                            return sm_error("tensor \"%s\": layer %ld, but the model has %lld layers", hf_name, n,
                                            (long long)hp->n_layer);
                        if (fits(snprintf(gguf_name, cap, "blk.%ld.%s%s", n, LAYER[i].gguf, suf), cap)) return -1;
                        if (hp->rope_hf_layout) *flags |= LAYER[i].permute;
                        if (LAYER[i].norm || bias) *flags |= SM_MAP_KEEP_F32;
                        return 1;
                    }
            }
        }
    }
    return sm_error("tensor \"%s\": not a known %s tensor", hf_name, hp->hf_arch[0] ? hp->hf_arch : hp->arch);
}

int sm_map_gguf_name(const sm_hparams *hp, const char *gguf_name, char *hf_name, size_t cap) {
    size_t stem;
    const char *suf = split_suffix(gguf_name, &stem);
    if (!suf) return 0;
    for (size_t i = 0; i < N_GLOBAL; i++)
        if (strlen(GLOBAL[i].gguf) == stem && !memcmp(gguf_name, GLOBAL[i].gguf, stem))
            return suf[1] == 'w' && !fits(snprintf(hf_name, cap, "%s%s", GLOBAL[i].hf, suf), cap);
    if (strncmp(gguf_name, "blk.", 4) != 0) return 0;
    const char *p = gguf_name + 4;
    if (!(*p >= '0' && *p <= '9')) return 0;
    char *end;
    long n = strtol(p, &end, 10);
    if (*end != '.' || n < 0 || (hp && hp->n_layer && n >= hp->n_layer)) return 0;
    const char *rest = end + 1;
    size_t rest_len = (size_t)(gguf_name + stem - rest);
    for (size_t i = 0; i < N_LAYER; i++)
        if (strlen(LAYER[i].gguf) == rest_len && !memcmp(rest, LAYER[i].gguf, rest_len))
            return !fits(snprintf(hf_name, cap, "model.layers.%ld.%s%s", n, LAYER[i].hf, suf), cap);
    return 0;
}

/* ---- the expected tensor list ---- */

typedef struct expect {
    const char *name; /* global name, or the part after "blk.N." */
    int n_dims;
    int64_t shape[2];
} expect;

/* The per-layer tensors present with these hyperparameters, into out (capacity 16). */
static size_t layer_tensors(const sm_hparams *hp, expect *out) {
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    const struct { expect e; bool on; } all[] = {
        {{"attn_norm.weight", 1, {E, 0}}, true},
        {{"attn_q.weight", 2, {Q, E}}, true},
        {{"attn_k.weight", 2, {KV, E}}, true},
        {{"attn_v.weight", 2, {KV, E}}, true},
        {{"attn_output.weight", 2, {E, Q}}, true},
        {{"attn_q.bias", 1, {Q, 0}}, hp->qkv_bias},
        {{"attn_k.bias", 1, {KV, 0}}, hp->qkv_bias},
        {{"attn_v.bias", 1, {KV, 0}}, hp->qkv_bias},
        {{"attn_output.bias", 1, {E, 0}}, hp->attn_out_bias},
        {{"ffn_norm.weight", 1, {E, 0}}, true},
        {{"ffn_gate.weight", 2, {F, E}}, true},
        {{"ffn_up.weight", 2, {F, E}}, true},
        {{"ffn_down.weight", 2, {E, F}}, true},
        {{"ffn_gate.bias", 1, {F, 0}}, hp->mlp_bias},
        {{"ffn_up.bias", 1, {F, 0}}, hp->mlp_bias},
        {{"ffn_down.bias", 1, {E, 0}}, hp->mlp_bias},
    };
    size_t n = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (all[k].on) out[n++] = all[k].e;
    return n;
}

int sm_arch_tensor(const sm_hparams *hp, size_t i, char *name, size_t cap, int *n_dims, int64_t shape[SM_MAX_DIMS]) {
    const expect global[] = {
        {"token_embd.weight", 2, {hp->n_vocab, hp->n_embd}},
        {"output_norm.weight", 1, {hp->n_embd, 0}},
        {"output.weight", 2, {hp->n_vocab, hp->n_embd}},
    };
    const size_t n_global = hp->tied_embeddings ? 2 : 3;
    expect per[16];
    const size_t n_per = layer_tensors(hp, per);
    expect e;
    int k;
    if (i < n_global) {
        e = global[i];
        k = snprintf(name, cap, "%s", e.name);
    } else {
        size_t j = i - n_global;
        if (j / n_per >= (size_t)hp->n_layer) return 0;
        e = per[j % n_per];
        k = snprintf(name, cap, "blk.%zu.%s", j / n_per, e.name);
    }
    if (k < 0 || (size_t)k >= cap) return sm_error("tensor name too long for the buffer");
    *n_dims = e.n_dims;
    for (int d = 0; d < SM_MAX_DIMS; d++) shape[d] = d < e.n_dims ? e.shape[d] : 0;
    return 1;
}

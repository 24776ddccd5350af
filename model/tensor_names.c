/* tensor_names.c - the decoder block's tensor table (arch_internal.h), Hugging Face <-> GGUF
 * tensor names, and the list of tensors (with shapes) a model with given hyperparameters must
 * have.
 *
 * Names follow gguf-py's tensor_mapping.py for LLAMA / QWEN2: model.embed_tokens ->
 * token_embd, model.layers.N.self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output},
 * mlp.{gate,up,down}_proj -> blk.N.ffn_{gate,up,down}, input_layernorm -> attn_norm,
 * post_attention_layernorm -> ffn_norm, self_attn.{q,k}_norm -> attn_{q,k}_norm (Qwen3),
 * model.norm -> output_norm, lm_head -> output; PHI3: self_attn.qkv_proj -> attn_qkv,
 * mlp.gate_up_proj -> ffn_up (kept fused, as llama.cpp's phi3 graph reads them). */
#include "arch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAT(field) offsetof(sm_layer_weights, field)
#define VEC(field) offsetof(sm_layer_weights, field)

/* The decoder block's tensors, for every architecture (presence by hyperparameters and the
 * architecture's features). Stems are looked up in order: a stem's first row gives the GGUF
 * name of both its ".weight" and ".bias". */
const sm_block_tensor SM_BLOCK_TENSORS[] = {
    {"input_layernorm", "attn_norm", false, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_ALWAYS, 0, SM_CT_ATTN_NORM, VEC(attn_norm)},
    {"self_attn.q_proj", "attn_q", false, SM_DIM_Q, SM_DIM_EMBD, SM_WHEN_UNFUSED, SM_MAP_PERMUTE_Q, SM_CT_WQ, MAT(wq)},
    {"self_attn.k_proj", "attn_k", false, SM_DIM_KV, SM_DIM_EMBD, SM_WHEN_UNFUSED, SM_MAP_PERMUTE_K, SM_CT_WK, MAT(wk)},
    {"self_attn.v_proj", "attn_v", false, SM_DIM_KV, SM_DIM_EMBD, SM_WHEN_UNFUSED, 0, SM_CT_WV, MAT(wv)},
    {"self_attn.o_proj", "attn_output", false, SM_DIM_EMBD, SM_DIM_Q, SM_WHEN_ALWAYS, 0, SM_CT_WO, MAT(wo)},
    {"self_attn.q_proj", "attn_q", true, SM_DIM_Q, SM_DIM_NONE, SM_WHEN_QKV_BIAS, SM_MAP_PERMUTE_Q, SM_CT_BQ, VEC(bq)},
    {"self_attn.k_proj", "attn_k", true, SM_DIM_KV, SM_DIM_NONE, SM_WHEN_QKV_BIAS, SM_MAP_PERMUTE_K, SM_CT_BK, VEC(bk)},
    {"self_attn.v_proj", "attn_v", true, SM_DIM_KV, SM_DIM_NONE, SM_WHEN_QKV_BIAS, 0, SM_CT_BV, VEC(bv)},
    {"self_attn.o_proj", "attn_output", true, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_OUT_BIAS, 0, SM_CT_BO, VEC(bo)},
    {"self_attn.q_norm", "attn_q_norm", false, SM_DIM_HEAD, SM_DIM_NONE, SM_WHEN_QK_NORM, 0, SM_CT_Q_NORM, VEC(q_norm)},
    {"self_attn.k_norm", "attn_k_norm", false, SM_DIM_HEAD, SM_DIM_NONE, SM_WHEN_QK_NORM, 0, SM_CT_K_NORM, VEC(k_norm)},
    {"post_attention_layernorm", "ffn_norm", false, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_NO_POST_NORMS, 0, SM_CT_FFN_NORM, VEC(ffn_norm)},
    /* Gemma 2: norms after attention and the FFN; the FFN's own pre-norm has its own name */
    {"post_attention_layernorm", "post_attention_norm", false, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_POST_NORMS, 0,
     SM_CT_POST_ATTN_NORM, VEC(post_attn_norm)},
    {"pre_feedforward_layernorm", "ffn_norm", false, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_POST_NORMS, 0, SM_CT_FFN_NORM,
     VEC(ffn_norm)},
    {"post_feedforward_layernorm", "post_ffw_norm", false, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_POST_NORMS, 0,
     SM_CT_POST_FFW_NORM, VEC(post_ffw_norm)},
    {"mlp.gate_proj", "ffn_gate", false, SM_DIM_FF, SM_DIM_EMBD, SM_WHEN_DENSE_UNFUSED, 0, SM_CT_GATE, MAT(gate)},
    {"mlp.up_proj", "ffn_up", false, SM_DIM_FF, SM_DIM_EMBD, SM_WHEN_DENSE_UNFUSED, 0, SM_CT_UP, MAT(up)},
    {"mlp.down_proj", "ffn_down", false, SM_DIM_EMBD, SM_DIM_FF, SM_WHEN_DENSE, 0, SM_CT_DOWN, MAT(down)},
    {"self_attn.qkv_proj", "attn_qkv", false, SM_DIM_QKV, SM_DIM_EMBD, SM_WHEN_FUSED, 0, SM_CT_COUNT, MAT(wqkv)},
    {"mlp.gate_up_proj", "ffn_up", false, SM_DIM_FF2, SM_DIM_EMBD, SM_WHEN_FUSED, 0, SM_CT_COUNT, MAT(gate_up)},
    {"mlp.gate_proj", "ffn_gate", true, SM_DIM_FF, SM_DIM_NONE, SM_WHEN_MLP_BIAS, 0, SM_CT_BGATE, VEC(bgate)},
    {"mlp.up_proj", "ffn_up", true, SM_DIM_FF, SM_DIM_NONE, SM_WHEN_MLP_BIAS, 0, SM_CT_BUP, VEC(bup)},
    {"mlp.down_proj", "ffn_down", true, SM_DIM_EMBD, SM_DIM_NONE, SM_WHEN_MLP_BIAS, 0, SM_CT_BDOWN, VEC(bdown)},
    /* mixtures of experts (not on CUDA): the router, then the experts stacked per matrix; the stacks
     * in the order of their HF stems (llama.cpp's converters stack w1, w2, w3 and down, gate, up) */
    {"mlp.gate", "ffn_gate_inp", false, SM_DIM_EXPERTS, SM_DIM_EMBD, SM_WHEN_MOE, 0, SM_CT_COUNT, MAT(gate_inp)},
    {"mlp.experts.*.down_proj", "ffn_down_exps", false, SM_DIM_EMBD, SM_DIM_FF_EXP, SM_WHEN_MOE, 0, SM_CT_COUNT,
     MAT(down_exps)},
    {"mlp.experts.*.gate_proj", "ffn_gate_exps", false, SM_DIM_FF_EXP, SM_DIM_EMBD, SM_WHEN_MOE, 0, SM_CT_COUNT,
     MAT(gate_exps)},
    {"mlp.experts.*.up_proj", "ffn_up_exps", false, SM_DIM_FF_EXP, SM_DIM_EMBD, SM_WHEN_MOE, 0, SM_CT_COUNT,
     MAT(up_exps)},
    {"block_sparse_moe.gate", "ffn_gate_inp", false, SM_DIM_EXPERTS, SM_DIM_EMBD, SM_WHEN_MOE_BSM, 0, SM_CT_COUNT,
     MAT(gate_inp)},
    {"block_sparse_moe.experts.*.w1", "ffn_gate_exps", false, SM_DIM_FF_EXP, SM_DIM_EMBD, SM_WHEN_MOE_BSM, 0,
     SM_CT_COUNT, MAT(gate_exps)},
    {"block_sparse_moe.experts.*.w2", "ffn_down_exps", false, SM_DIM_EMBD, SM_DIM_FF_EXP, SM_WHEN_MOE_BSM, 0,
     SM_CT_COUNT, MAT(down_exps)},
    {"block_sparse_moe.experts.*.w3", "ffn_up_exps", false, SM_DIM_FF_EXP, SM_DIM_EMBD, SM_WHEN_MOE_BSM, 0,
     SM_CT_COUNT, MAT(up_exps)},
};
const size_t SM_N_BLOCK_TENSORS = sizeof SM_BLOCK_TENSORS / sizeof SM_BLOCK_TENSORS[0];
#define N_LAYER SM_N_BLOCK_TENSORS
#define LAYER SM_BLOCK_TENSORS

/* A row that names its stem only for some architectures (the same HF or GGUF stem means
 * another tensor elsewhere) and does not apply to hp's; hp NULL: no features. */
bool sm_block_tensor_other_arch(const sm_hparams *hp, const sm_block_tensor *t) {
    const unsigned f = hp ? hp->features : 0;
    const bool unfused = t->when == SM_WHEN_UNFUSED || t->when == SM_WHEN_DENSE_UNFUSED;
    return (t->when == SM_WHEN_POST_NORMS && !(f & SM_FEAT_POST_NORMS)) ||
           (t->when == SM_WHEN_NO_POST_NORMS && (f & SM_FEAT_POST_NORMS)) ||
           (t->when == SM_WHEN_FUSED && !(f & SM_FEAT_FUSED)) || (unfused && (f & SM_FEAT_FUSED)) ||
           ((t->when == SM_WHEN_MOE || t->when == SM_WHEN_MOE_BSM) && !(hp && sm_block_tensor_present(hp, t)));
}

bool sm_block_tensor_is_stack(const sm_block_tensor *t) { return strchr(t->hf, '*') != NULL; }

int sm_moe_stacks(const sm_hparams *hp, sm_moe_stack out[3]) {
    int k = 0;
    for (size_t i = 0; i < N_LAYER && k < 3; i++)
        if (sm_block_tensor_is_stack(&LAYER[i]) && sm_block_tensor_present(hp, &LAYER[i]))
            out[k++] = (sm_moe_stack){LAYER[i].gguf, LAYER[i].hf, sm_dim_size(hp, LAYER[i].rows), sm_dim_size(hp, LAYER[i].cols)};
    if (k != 3) return sm_error("%s: not a mixture of experts", hp->hf_arch[0] ? hp->hf_arch : hp->arch);
    for (int i = 1; i < 3; i++) /* insertion sort by HF stem */
        for (int j = i; j > 0 && strcmp(out[j - 1].hf, out[j].hf) > 0; j--) {
            const sm_moe_stack t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return 0;
}

bool sm_block_tensor_present(const sm_hparams *hp, const sm_block_tensor *t) {
    switch (t->when) {
    case SM_WHEN_ALWAYS: return true;
    case SM_WHEN_QKV_BIAS: return hp->qkv_bias;
    case SM_WHEN_OUT_BIAS: return hp->attn_out_bias;
    case SM_WHEN_MLP_BIAS: return hp->mlp_bias;
    case SM_WHEN_QK_NORM: return (hp->features & SM_FEAT_QK_NORM) != 0;
    case SM_WHEN_UNFUSED: return !(hp->features & SM_FEAT_FUSED);
    case SM_WHEN_FUSED: return (hp->features & SM_FEAT_FUSED) != 0;
    case SM_WHEN_POST_NORMS: return (hp->features & SM_FEAT_POST_NORMS) != 0;
    case SM_WHEN_NO_POST_NORMS: return (hp->features & SM_FEAT_POST_NORMS) == 0;
    case SM_WHEN_DENSE: return !(hp->features & SM_FEAT_MOE);
    case SM_WHEN_DENSE_UNFUSED: return !(hp->features & (SM_FEAT_MOE | SM_FEAT_FUSED));
    case SM_WHEN_MOE: return (hp->features & (SM_FEAT_MOE | SM_FEAT_MOE_BSM)) == SM_FEAT_MOE;
    case SM_WHEN_MOE_BSM: return (hp->features & (SM_FEAT_MOE | SM_FEAT_MOE_BSM)) == (SM_FEAT_MOE | SM_FEAT_MOE_BSM);
    }
    return false;
}

int64_t sm_dim_size(const sm_hparams *hp, sm_dim d) {
    switch (d) {
    case SM_DIM_NONE: return 0;
    case SM_DIM_EMBD: return hp->n_embd;
    case SM_DIM_FF: return hp->n_ff;
    case SM_DIM_Q: return hp->n_head * hp->head_dim;
    case SM_DIM_KV: return hp->n_head_kv * hp->head_dim;
    case SM_DIM_HEAD: return hp->head_dim;
    case SM_DIM_QKV: return (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    case SM_DIM_FF2: return 2 * hp->n_ff;
    case SM_DIM_EXPERTS: return hp->n_expert;
    case SM_DIM_FF_EXP: return hp->n_ff_exp;
    }
    return 0;
}

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

/* rest[0, len) is the stem `pat`, whose "*" (if any) stands for an expert number (decimal, no
 * leading zeros), returned in *expert. */
static bool stem_matches(const char *pat, const char *rest, size_t len, long *expert) {
    const char *star = strchr(pat, '*');
    if (!star) return strlen(pat) == len && !memcmp(rest, pat, len);
    const size_t pre = (size_t)(star - pat), post = strlen(star + 1);
    if (len < pre + post + 1 || memcmp(rest, pat, pre) || memcmp(rest + len - post, star + 1, post)) return false;
    const char *d = rest + pre, *end = rest + len - post;
    if (end - d > 6 || (d[0] == '0' && end - d > 1)) return false;
    long e = 0;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9') return false;
        e = e * 10 + (*d - '0');
    }
    *expert = e;
    return true;
}

bool sm_is_vision_tensor(const sm_hparams *hp, const char *hf_name) {
    if (!(hp->features & SM_FEAT_VLM_TEXT)) return false;
    if (!strncmp(hf_name, "model.", 6)) hf_name += 6;
    return !strncmp(hf_name, "vision_tower.", 13) || !strncmp(hf_name, "multi_modal_projector.", 22);
}

int sm_map_hf_name(const sm_hparams *hp, const char *hf_name, char *gguf_name, size_t cap, int *flags) {
    *flags = 0;
    /* a vision-language checkpoint: the vision tower and projector are not the text model's
     * (llama.cpp writes them to a separate mmproj file); "language_model." dropped from the
     * text model's names, as convert_hf_to_gguf.py does (language_model.model.layers.N. and
     * model.language_model.layers.N. both become model.layers.N.) */
    char text_name[512];
    if (hp->features & SM_FEAT_VLM_TEXT) {
        if (sm_is_vision_tensor(hp, hf_name)) return 0;
        const char *lm = strstr(hf_name, "language_model.");
        if (lm) {
            if (fits(snprintf(text_name, sizeof text_name, "%.*s%s", (int)(lm - hf_name), hf_name, lm + 15),
                     sizeof text_name))
                return -1;
            hf_name = text_name;
        }
    }
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
            if (GLOBAL[i].norm && (hp->features & SM_FEAT_NORM_SHIFT)) *flags |= SM_MAP_NORM_SHIFT;
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
                for (size_t i = 0; i < N_LAYER; i++) {
                    long e = -1;
                    if (sm_block_tensor_other_arch(hp, &LAYER[i]) || !stem_matches(LAYER[i].hf, rest, rest_len, &e))
                        continue;
                    if (n >= hp->n_layer)
                        return sm_error("tensor \"%s\": layer %ld, but the model has %lld layers", hf_name, n,
                                        (long long)hp->n_layer);
                    if (e >= 0) { /* one expert of a stack */
                        if (bias) break;
                        if (e >= hp->n_expert)
                            return sm_error("tensor \"%s\": expert %ld, but the model has %lld experts", hf_name, e,
                                            (long long)hp->n_expert);
                        *flags |= SM_MAP_EXPERT | (int)(e << SM_MAP_EXPERT_SHIFT);
                    }
                    if (!strcmp(LAYER[i].gguf, "ffn_gate_inp")) *flags |= SM_MAP_KEEP_F32; /* the converter's FFN_GATE_INP rule */
                    {
                        if (fits(snprintf(gguf_name, cap, "blk.%ld.%s%s", n, LAYER[i].gguf, suf), cap)) return -1;
                        if (hp->rope_hf_layout) *flags |= LAYER[i].permute;
                        if (LAYER[i].cols == SM_DIM_NONE || bias) *flags |= SM_MAP_KEEP_F32;
                        if ((hp->features & SM_FEAT_NORM_SHIFT) && !bias && ends_with(LAYER[i].hf, "norm"))
                            *flags |= SM_MAP_NORM_SHIFT;
                        return 1;
                    }
                }
            }
        }
    }
    return sm_error("tensor \"%s\": not a known %s tensor", hf_name, hp->hf_arch[0] ? hp->hf_arch : hp->arch);
}

/* ffn_up names mlp.up_proj, or mlp.gate_up_proj in a fused (Phi-3) block: the row that
 * matches the model's block (without hyperparameters, the unfused one). */
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
        if (!sm_block_tensor_other_arch(hp, &LAYER[i]) && strlen(LAYER[i].gguf) == rest_len && !memcmp(rest, LAYER[i].gguf, rest_len))
            return !fits(snprintf(hf_name, cap, "model.layers.%ld.%s%s", n, LAYER[i].hf, suf), cap);
    return 0;
}

int sm_norm_shift_to_f32(sm_type src_type, const void *src, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (src_type) {
        case SM_TYPE_F32: out[i] = ((const float *)src)[i] + 1.0f; break;
        case SM_TYPE_F16: out[i] = sm_f16_to_f32(sm_f32_to_f16(sm_f16_to_f32(((const uint16_t *)src)[i]) + 1.0f)); break;
        case SM_TYPE_BF16:
            out[i] = sm_bf16_to_f32(sm_f32_to_bf16(sm_bf16_to_f32(((const uint16_t *)src)[i]) + 1.0f));
            break;
        default: return sm_error("norm weight of type %s: expected F32, F16 or BF16", sm_type_name(src_type));
        }
    }
    return 0;
}

/* ---- the expected tensor list ---- */

typedef struct expect {
    const char *name; /* global name, or the part after "blk.N." */
    int n_dims;
    int64_t shape[3];
} expect;

int sm_arch_tensor(const sm_hparams *hp, size_t i, char *name, size_t cap, int *n_dims, int64_t shape[SM_MAX_DIMS]) {
    const expect global[] = {
        {"token_embd.weight", 2, {hp->n_vocab, hp->n_embd}},
        {"output_norm.weight", 1, {hp->n_embd, 0}},
        {"output.weight", 2, {hp->n_vocab, hp->n_embd}},
    };
    const size_t n_global = hp->tied_embeddings ? 2 : 3;
    const sm_block_tensor *per[sizeof SM_BLOCK_TENSORS / sizeof SM_BLOCK_TENSORS[0]];
    size_t n_per = 0;
    for (size_t r = 0; r < N_LAYER; r++)
        if (sm_block_tensor_present(hp, &LAYER[r])) per[n_per++] = &LAYER[r];
    expect e;
    int k;
    if (i < n_global) {
        e = global[i];
        k = snprintf(name, cap, "%s", e.name);
    } else {
        size_t j = i - n_global;
        if (j / n_per >= (size_t)hp->n_layer) return 0;
        const sm_block_tensor *t = per[j % n_per];
        if (sm_block_tensor_is_stack(t))
            e = (expect){NULL, 3, {hp->n_expert, sm_dim_size(hp, t->rows), sm_dim_size(hp, t->cols)}};
        else
            e = (expect){NULL, t->cols == SM_DIM_NONE ? 1 : 2, {sm_dim_size(hp, t->rows), sm_dim_size(hp, t->cols)}};
        k = snprintf(name, cap, "blk.%zu.%s%s", j / n_per, t->gguf, t->bias ? ".bias" : ".weight");
    }
    if (k < 0 || (size_t)k >= cap) return sm_error("tensor name too long for the buffer");
    *n_dims = e.n_dims;
    for (int d = 0; d < SM_MAX_DIMS; d++) shape[d] = d < e.n_dims ? e.shape[d] : 0;
    return 1;
}

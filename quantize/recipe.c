/* recipe.c - per-tensor type selection for quantization mixtures, following llama.cpp's
 * llama-quant.cpp (llama_tensor_get_type and its helpers) for the recipes smelt supports. */
#include "quantize/quantize.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama_ftype numbers (llama.h), written as general.file_type */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_Q2_K_S = 21, FT_IQ4_NL = 25, FT_IQ4_XS = 30,
    FT_BF16 = 32, FT_IQ2_XXS = 19, FT_IQ2_XS = 20, FT_IQ3_XS = 22, FT_IQ3_XXS = 23, FT_IQ1_S = 24,
    FT_IQ3_S = 26, FT_IQ3_M = 27, FT_IQ2_S = 28, FT_IQ2_M = 29, FT_IQ1_M = 31, FT_TQ1_0 = 36, FT_TQ2_0 = 37,
    FT_MXFP4_MOE = 38,
};

static const sm_recipe RECIPES[] = {
    {"Q4_0", FT_Q4_0, SM_TYPE_Q4_0, "4.5 bpw, legacy"},
    {"Q4_1", FT_Q4_1, SM_TYPE_Q4_1, "5.0 bpw, legacy"},
    {"Q5_0", FT_Q5_0, SM_TYPE_Q5_0, "5.5 bpw, legacy"},
    {"Q5_1", FT_Q5_1, SM_TYPE_Q5_1, "6.0 bpw, legacy"},
    {"MXFP4_MOE", FT_MXFP4_MOE, SM_TYPE_MXFP4, "MXFP4 for expert tensors, Q8_0 elsewhere"},
    {"IQ2_XXS", FT_IQ2_XXS, SM_TYPE_IQ2_XXS, "2.06 bpw i-quant (needs an imatrix)"},
    {"IQ2_XS", FT_IQ2_XS, SM_TYPE_IQ2_XS, "2.31 bpw i-quant (needs an imatrix)"},
    {"IQ2_S", FT_IQ2_S, SM_TYPE_IQ2_XS, "2.5 bpw i-quant mix (needs an imatrix)"},
    {"IQ2_M", FT_IQ2_M, SM_TYPE_IQ2_S, "2.7 bpw i-quant mix (needs an imatrix)"},
    {"IQ1_S", FT_IQ1_S, SM_TYPE_IQ1_S, "1.56 bpw i-quant (needs an imatrix)"},
    {"IQ1_M", FT_IQ1_M, SM_TYPE_IQ1_M, "1.75 bpw i-quant (needs an imatrix)"},
    {"TQ1_0", FT_TQ1_0, SM_TYPE_TQ1_0, "1.69 bpw ternary"},
    {"TQ2_0", FT_TQ2_0, SM_TYPE_TQ2_0, "2.06 bpw ternary"},
    {"Q2_K", FT_Q2_K, SM_TYPE_Q2_K, "k-quant mix around 2.6 bpw"},
    {"Q2_K_S", FT_Q2_K_S, SM_TYPE_Q2_K, "k-quant mix around 2.6 bpw (needs an imatrix)"},
    {"IQ3_XXS", FT_IQ3_XXS, SM_TYPE_IQ3_XXS, "3.06 bpw i-quant (needs an imatrix)"},
    {"IQ3_S", FT_IQ3_S, SM_TYPE_IQ3_S, "3.44 bpw i-quant"},
    {"IQ3_M", FT_IQ3_M, SM_TYPE_IQ3_S, "3.66 bpw i-quant mix"},
    {"IQ3_XS", FT_IQ3_XS, SM_TYPE_IQ3_S, "3.3 bpw i-quant mix"},
    {"Q3_K", FT_Q3_K_M, SM_TYPE_Q3_K, "alias for Q3_K_M"},
    {"Q3_K_S", FT_Q3_K_S, SM_TYPE_Q3_K, "k-quant mix around 3.4 bpw"},
    {"Q3_K_M", FT_Q3_K_M, SM_TYPE_Q3_K, "k-quant mix around 3.7 bpw"},
    {"Q3_K_L", FT_Q3_K_L, SM_TYPE_Q3_K, "k-quant mix around 4.0 bpw"},
    {"IQ4_NL", FT_IQ4_NL, SM_TYPE_IQ4_NL, "4.5 bpw non-linear"},
    {"IQ4_XS", FT_IQ4_XS, SM_TYPE_IQ4_XS, "4.25 bpw non-linear"},
    {"Q4_K", FT_Q4_K_M, SM_TYPE_Q4_K, "alias for Q4_K_M"},
    {"Q4_K_S", FT_Q4_K_S, SM_TYPE_Q4_K, "k-quant mix around 4.6 bpw"},
    {"Q4_K_M", FT_Q4_K_M, SM_TYPE_Q4_K, "k-quant mix around 4.8 bpw"},
    {"Q5_K", FT_Q5_K_M, SM_TYPE_Q5_K, "alias for Q5_K_M"},
    {"Q5_K_S", FT_Q5_K_S, SM_TYPE_Q5_K, "k-quant mix around 5.5 bpw"},
    {"Q5_K_M", FT_Q5_K_M, SM_TYPE_Q5_K, "k-quant mix around 5.7 bpw"},
    {"Q6_K", FT_Q6_K, SM_TYPE_Q6_K, "6.56 bpw"},
    {"Q8_0", FT_Q8_0, SM_TYPE_Q8_0, "8.5 bpw"},
    {"F16", FT_F16, SM_TYPE_F16, "16 bpw"},
    {"BF16", FT_BF16, SM_TYPE_BF16, "16 bpw"},
    {"F32", FT_F32, SM_TYPE_F32, "32 bpw"},
};
#define N_RECIPES (sizeof RECIPES / sizeof RECIPES[0])

static bool ieq(const char *a, const char *b) {
    while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
    return !*a && !*b;
}

const sm_recipe *sm_recipe_find(const char *name) {
    for (size_t i = 0; i < N_RECIPES; i++)
        if (ieq(RECIPES[i].name, name)) return &RECIPES[i];
    return NULL;
}

const char *sm_recipe_names(void) {
    static char buf[1024];
    if (!buf[0]) {
        size_t k = 0;
        for (size_t i = 0; i < N_RECIPES; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "", RECIPES[i].name);
    }
    return buf;
}

/* ---- tensor categories (llama-quant.cpp tensor_get_category) ---- */
typedef enum {
    CAT_OTHER, CAT_OUTPUT, CAT_TOKEN_EMBD, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_V, CAT_ATTN_K,
    CAT_ATTN_Q, CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN,
} category;

static category category_of(const char *n) {
    if (!strcmp(n, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(n, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(n, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(n, "ffn_up")) return CAT_FFN_UP;
    if (strstr(n, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(n, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool is_attn_v(category c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* llama-quant.cpp tensor_allows_quantization, for the architectures smelt supports */
static bool allows_quantization(const char *n, int n_dims) {
    if (n_dims < 2) return false;
    size_t len = strlen(n);
    if (len < 6 || strcmp(n + len - 6, "weight") != 0) return false;
    static const char *const never[] = {"_norm.weight", "ffn_gate_inp.weight", "altup", "laurel",
                                        "per_layer_model_proj", "ssm_conv1d", "attn_rel_b.weight",
                                        ".position_embd", ".patch_embd"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(n, never[i])) return false;
    if (!strcmp(n, "position_embd.weight") || !strcmp(n, "token_types.weight")) return false;
    return true;
}

static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

int sm_recipe_plan_begin(sm_recipe_plan *p, const sm_recipe *r, const char *const *names, size_t n_names,
                         const sm_recipe_model *m, bool has_imatrix) {
    memset(p, 0, sizeof *p);
    p->recipe = r;
    p->n_layer = (int)m->n_layer;
    p->n_head = m->n_head;
    p->n_head_kv = m->n_head_kv > 0 ? m->n_head_kv : m->n_head;
    p->n_expert = m->n_expert > 0 && m->n_expert < INT32_MAX ? (int)m->n_expert : 0;
    p->has_imatrix = has_imatrix;
    p->output_type = p->token_embd_type = SM_TYPE_INVALID;
    /* llama.cpp's 8-expert llama models are 8x7B / 8x22B, not the 70B */
    p->llama_70b = m->arch && !strcmp(m->arch, "llama") && m->n_layer == 80 && p->n_head != p->n_head_kv &&
                   p->n_expert != 8;
    p->tied_embeddings = true;
    for (size_t i = 0; i < n_names; i++) {
        category c = category_of(names[i]);
        if (is_attn_v(c)) p->n_attention_wv++;
        if (c == CAT_OUTPUT) p->tied_embeddings = false;
    }
    return 0;
}

int sm_recipe_add_rule(sm_recipe_plan *p, const char *regex, const char *type_name) {
    if (p->n_rules >= SM_RECIPE_MAX_RULES) return sm_error("too many tensor type rules (max %d)", SM_RECIPE_MAX_RULES);
    sm_recipe_rule *rule = &p->rules[p->n_rules];
    rule->type = SM_TYPE_INVALID;
    if (type_name) {
        rule->type = sm_type_from_name(type_name);
        const sm_type_info *ti = sm_type_get(rule->type);
        if (!ti || !ti->in_ggml || (!ti->quantized && rule->type != SM_TYPE_F32 && rule->type != SM_TYPE_F16 &&
                                    rule->type != SM_TYPE_BF16))
            return sm_error("unknown tensor type '%s' in rule for '%s'", type_name, regex);
    }
    int rc = regcomp(&rule->re, regex, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char msg[128];
        regerror(rc, &rule->re, msg, sizeof msg);
        return sm_error("bad regular expression '%s': %s", regex, msg);
    }
    rule->pattern = strdup(regex);
    p->n_rules++;
    return 0;
}

void sm_recipe_plan_free(sm_recipe_plan *p) {
    for (int i = 0; i < p->n_rules; i++) {
        regfree(&p->rules[i].re);
        free(p->rules[i].pattern);
    }
    p->n_rules = 0;
}

/* The 1- and 2-bit i-quant recipes (llama.cpp groups them for most rules). */
static bool low_iq(int ft) {
    return ft == FT_IQ2_XXS || ft == FT_IQ2_XS || ft == FT_IQ1_S || ft == FT_IQ2_S || ft == FT_IQ2_M || ft == FT_IQ1_M;
}

/* llama_tensor_get_type_impl's rules for the 1- and 2-bit i-quant recipes (n_expert: the
 * model's expert count, 0 for a dense model). */
static sm_type low_iq_type(sm_recipe_plan *p, sm_type t, category cat, int64_t n_gqa) {
    const int ft = p->recipe->ftype;
    const bool s_or_m = ft == FT_IQ2_S || ft == FT_IQ2_M;
    if (is_attn_v(cat)) {
        t = n_gqa >= 4 || p->n_expert >= 4 ? SM_TYPE_Q4_K : s_or_m ? SM_TYPE_IQ3_S : SM_TYPE_Q2_K;
        p->i_attention_wv++;
    } else if (p->n_expert == 8 && cat == CAT_ATTN_K) {
        t = SM_TYPE_Q4_K;
    } else if (cat == CAT_FFN_DOWN) {
        if (p->i_ffn_down < p->n_layer / 8) t = s_or_m ? SM_TYPE_IQ3_S : SM_TYPE_Q2_K;
        p->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (p->n_expert == 8) t = SM_TYPE_Q5_K;
        else if (ft == FT_IQ1_S || ft == FT_IQ1_M) t = SM_TYPE_IQ2_XXS;
        else if (s_or_m) t = SM_TYPE_IQ3_S;
    }
    return t;
}

/* The layer a feed-forward rule looks at (llama-quant.cpp's layer_info): the running counter in a
 * dense model; in a mixture of experts the block number in the name (-1 with an error when there
 * is none in [0, n_layer)). */
static int ffn_layer(const sm_recipe_plan *p, int counter, const char *name) {
    if (p->n_expert <= 1) return counter;
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) != 1) {
        sm_error("tensor %s: cannot tell its layer (blk.N.) for the expert-model rules", name);
        return -1;
    }
    if (layer < 0 || layer >= p->n_layer) {
        sm_error("tensor %s: layer %d outside [0, %d) (block_count)", name, layer, p->n_layer);
        return -1;
    }
    return layer;
}

/* attn_output in the k-quant and i-quant recipes whose 8-expert models get Q5_K there */
static bool moe8_attn_output_q5k(int ft) {
    return ft == FT_Q2_K || ft == FT_IQ3_XS || ft == FT_IQ3_XXS || ft == FT_Q3_K_S || ft == FT_Q3_K_M ||
           ft == FT_IQ4_NL || ft == FT_Q4_K_S || ft == FT_Q4_K_M || ft == FT_IQ3_S || ft == FT_IQ3_M || ft == FT_IQ4_XS;
}

/* llama_tensor_get_type_impl for the supported ftypes, dense and mixture-of-experts models
 * (p->n_expert; `experts`: a 3-D tensor with more than one expert, for MXFP4_MOE). Returns
 * SM_TYPE_INVALID (sm_error) where llama.cpp refuses the tensor. */
static sm_type mixture_type(sm_recipe_plan *p, sm_type t, category cat, const char *name, int64_t row_len,
                            bool experts) {
    const int ft = p->recipe->ftype;
    const int64_t n_gqa = p->n_head_kv ? p->n_head / p->n_head_kv : 1;
    if (cat == CAT_OUTPUT || (p->tied_embeddings && cat == CAT_TOKEN_EMBD)) {
        if (p->output_type != SM_TYPE_INVALID) return p->output_type;
        const sm_type_info *ti = sm_type_get(t);
        if (ft == FT_MXFP4_MOE || row_len % ti->block_size != 0) return SM_TYPE_Q8_0;
        if (low_iq(ft) || ft == FT_IQ3_XXS) return SM_TYPE_Q5_K;
        if (t != SM_TYPE_Q8_0) return SM_TYPE_Q6_K;
        return t;
    }
    if (ft == FT_MXFP4_MOE) return experts ? SM_TYPE_MXFP4 : SM_TYPE_Q8_0;
    if (cat == CAT_TOKEN_EMBD) {
        if (p->token_embd_type != SM_TYPE_INVALID) return p->token_embd_type;
        if (ft == FT_IQ2_XXS || ft == FT_IQ2_XS || ft == FT_IQ1_S || ft == FT_IQ1_M) return SM_TYPE_Q2_K;
        if (ft == FT_IQ2_S || ft == FT_IQ2_M || ft == FT_IQ3_XXS) return SM_TYPE_IQ3_S;
        if (ft == FT_TQ1_0 || ft == FT_TQ2_0) return SM_TYPE_Q4_K;
        return t;
    }
    if (low_iq(ft)) return low_iq_type(p, t, cat, n_gqa);
    if (is_attn_v(cat)) {
        if (ft == FT_Q2_K) t = n_gqa >= 4 ? SM_TYPE_Q4_K : SM_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S && n_gqa >= 4) t = SM_TYPE_Q4_K;
        else if (ft == FT_IQ3_XXS) t = n_gqa >= 4 ? SM_TYPE_Q4_K : !p->has_imatrix ? SM_TYPE_IQ3_S : SM_TYPE_IQ3_XXS;
        else if ((ft == FT_IQ3_XS || ft == FT_IQ3_S) && n_gqa >= 4) t = SM_TYPE_Q4_K;
        else if (ft == FT_IQ3_M) t = SM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_M) t = p->i_attention_wv < 2 ? SM_TYPE_Q5_K : SM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = SM_TYPE_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && n_gqa >= 4) t = SM_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(p->i_attention_wv, p->n_attention_wv))
            t = SM_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && p->i_attention_wv < 4) t = SM_TYPE_Q5_K;
        if (p->llama_70b && (t == SM_TYPE_Q3_K || t == SM_TYPE_Q4_K)) t = SM_TYPE_Q5_K;
        if (p->n_expert == 8) t = SM_TYPE_Q8_0;
        p->i_attention_wv++;
        return t;
    }
    if (cat == CAT_ATTN_K || cat == CAT_ATTN_Q) {
        if (cat == CAT_ATTN_K && p->n_expert == 8) t = SM_TYPE_Q8_0;
        else if (ft == FT_IQ3_XS) t = SM_TYPE_IQ3_XXS;
        else if (ft == FT_IQ3_XXS) t = SM_TYPE_IQ2_S;
        return t;
    }
    if (cat == CAT_FFN_DOWN) {
        const int i_layer = ffn_layer(p, p->i_ffn_down, name), n_layer = p->n_layer;
        if (i_layer < 0) return SM_TYPE_INVALID;
        if (ft == FT_Q2_K) t = SM_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S) { if (i_layer < n_layer / 8) t = SM_TYPE_Q4_K; }
        else if (ft == FT_IQ3_XXS && !p->has_imatrix) t = i_layer < n_layer / 8 ? SM_TYPE_Q4_K : SM_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = i_layer < n_layer / 16 ? SM_TYPE_Q5_K : SM_TYPE_Q4_K;
        else if (ft == FT_IQ3_M && (i_layer < n_layer / 8 || (p->n_expert == 8 && use_more_bits(i_layer, n_layer))))
            t = SM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = SM_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) { if (use_more_bits(i_layer, n_layer)) t = SM_TYPE_Q6_K; }
        else if (i_layer < n_layer / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS) && !p->has_imatrix) t = SM_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M && use_more_bits(i_layer, n_layer)) t = SM_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i_layer < n_layer / 8) t = SM_TYPE_Q5_K;
        else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && p->has_imatrix && i_layer < n_layer / 8)
            t = ft == FT_Q4_0 ? SM_TYPE_Q4_1 : SM_TYPE_Q5_1;
        p->i_ffn_down++;
        return t;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (p->n_expert == 8) return moe8_attn_output_q5k(ft) ? SM_TYPE_Q5_K : t;
        if (ft == FT_Q2_K) t = SM_TYPE_Q3_K;
        else if (ft == FT_IQ3_XXS) t = SM_TYPE_IQ3_S;
        else if (ft == FT_Q3_K_M) t = SM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = SM_TYPE_Q5_K;
        else if (ft == FT_IQ3_M) t = SM_TYPE_Q4_K;
        return t;
    }
    if (cat == CAT_ATTN_QKV) {
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L || ft == FT_IQ3_M) t = SM_TYPE_Q4_K;
        else if (ft == FT_Q4_K_M) t = SM_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M) t = SM_TYPE_Q6_K;
        return t;
    }
    if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        int *counter = cat == CAT_FFN_GATE ? &p->i_ffn_gate : &p->i_ffn_up;
        const int i_layer = ffn_layer(p, *counter, name);
        if (i_layer < 0) return SM_TYPE_INVALID;
        if (ft == FT_IQ3_XS && i_layer >= p->n_layer / 8 && i_layer < 7 * p->n_layer / 8) t = SM_TYPE_IQ3_XXS;
        (*counter)++;
    }
    return t;
}

/* llama-quant.cpp tensor_type_fallback */
static sm_type fallback_type(sm_type t, int64_t row_len) {
    const sm_type_info *ti = sm_type_get(t);
    if (!ti || row_len % ti->block_size == 0) return t;
    sm_type r;
    switch (t) {
    case SM_TYPE_IQ1_S: case SM_TYPE_IQ1_M: case SM_TYPE_IQ2_XXS: case SM_TYPE_IQ2_XS: case SM_TYPE_IQ2_S:
    case SM_TYPE_IQ3_XXS: case SM_TYPE_IQ3_S: case SM_TYPE_IQ4_XS: r = SM_TYPE_IQ4_NL; break;
    case SM_TYPE_Q2_K: case SM_TYPE_Q3_K: case SM_TYPE_TQ1_0: case SM_TYPE_TQ2_0: r = SM_TYPE_Q4_0; break;
    case SM_TYPE_Q4_K: r = SM_TYPE_Q5_0; break;
    case SM_TYPE_Q5_K: r = SM_TYPE_Q5_1; break;
    case SM_TYPE_Q6_K: r = SM_TYPE_Q8_0; break;
    default: r = SM_TYPE_F16; break;
    }
    if (row_len % sm_type_get(r)->block_size != 0) r = SM_TYPE_F16;
    return r;
}

sm_type sm_recipe_tensor_type(sm_recipe_plan *p, const char *name, int n_dims, const int64_t *shape,
                              sm_type cur_type, bool *fallback) {
    if (fallback) *fallback = false;
    if (!allows_quantization(name, n_dims)) return cur_type;
    const int64_t row_len = shape[n_dims - 1];
    category cat = category_of(name);
    for (int i = 0; i < p->n_rules; i++) {
        if (p->rules[i].type == SM_TYPE_INVALID && regexec(&p->rules[i].re, name, 0, NULL, 0) == 0) return cur_type;
    }
    if (p->token_embd_type != SM_TYPE_INVALID && cat == CAT_TOKEN_EMBD) return p->token_embd_type;
    if (p->output_type != SM_TYPE_INVALID && cat == CAT_OUTPUT) return p->output_type;
    sm_type t = p->recipe->default_type;
    if (!sm_type_get(t)->quantized) return t;
    bool manual = false;
    for (int i = 0; i < p->n_rules; i++) {
        if (p->rules[i].type != SM_TYPE_INVALID && regexec(&p->rules[i].re, name, 0, NULL, 0) == 0) {
            t = p->rules[i].type;
            manual = true;
            break;
        }
    }
    if (!manual && !p->pure) t = mixture_type(p, t, cat, name, row_len, n_dims == 3 && shape[0] > 1);
    if (t == SM_TYPE_INVALID) return t;
    sm_type f = fallback_type(t, row_len);
    if (f != t) {
        p->n_fallback++;
        if (fallback) *fallback = true;
    }
    return f;
}

bool sm_recipe_requires_imatrix(const sm_recipe_plan *p, const char *name, sm_type type) {
    category c = category_of(name);
    if (c == CAT_TOKEN_EMBD || c == CAT_OUTPUT) return false;
    switch (type) {
    case SM_TYPE_IQ3_XXS: case SM_TYPE_IQ2_XXS: case SM_TYPE_IQ2_XS: case SM_TYPE_IQ2_S:
    case SM_TYPE_IQ1_M: case SM_TYPE_IQ1_S: return true;
    case SM_TYPE_Q2_K: return p->recipe->ftype == FT_Q2_K_S;
    default: return false;
    }
}

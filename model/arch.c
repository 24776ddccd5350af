/* arch.c - the architecture table and config.json -> sm_hparams.
 *
 * One row per Hugging Face architecture: its GGUF architecture, what the converter must do
 * (permute q/k rows for llama.cpp's rope, write llama.cpp's LlamaModel-only keys) and a small
 * function for the architecture's own config fields. The shared fields (sizes, rope, norms)
 * are read once for all rows, with the defaults transformers' config classes use. Values and
 * rope-scaling rules follow llama.cpp's convert_hf_to_gguf.py (conversion/base.py TextModel,
 * conversion/llama.py LlamaModel, conversion/qwen.py Qwen2Model and Qwen3Model). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFIG_MAX_BYTES (4u << 20)
#define MAX_DIM ((int64_t)1 << 24)

static int sliding_window_extras(const cJSON *cfg, const char *path, sm_hparams *hp);

/* The architecture table. Columns: HF class, GGUF architecture, GGUF rope, permute q/k at
 * convert, LlamaModel keys, q/k/v biases always, bias config key, mlp_bias key, sliding-window
 * keys, default context, BPE pre-tokenizer, block features. Rows with hf_name NULL only name a
 * GGUF architecture the runtime reads (llama.cpp's older Mistral files). */
#define GEMMA3_FEATURES                                                                                            \
    (SM_FEAT_QK_NORM | SM_FEAT_GELU_TANH | SM_FEAT_EMBD_SCALE | SM_FEAT_POST_NORMS | SM_FEAT_SOFTCAP | SM_FEAT_SWA |      \
     SM_FEAT_SWA_ROPE | SM_FEAT_NORM_SHIFT | SM_FEAT_SPM_NO_SPACE_PREFIX)
static const sm_arch_info ARCHS[] = {
    {"LlamaForCausalLM", "llama", SM_ROPE_NORM, true, true, false, "attention_bias", true, false, 2048, "llama-bpe", SM_FEAT_TOKCFG_SPACE_PREFIX,
     SM_KEYS_TEXT},
    {"MistralForCausalLM", "llama", SM_ROPE_NORM, true, true, false, NULL, false, true, 131072, "llama-bpe",
     SM_FEAT_TOKCFG_SPACE_PREFIX, SM_KEYS_TEXT},
    {"Qwen2ForCausalLM", "qwen2", SM_ROPE_NEOX, false, false, true, NULL, false, true, 32768, "qwen2", 0, SM_KEYS_TEXT},
    {"Qwen3ForCausalLM", "qwen3", SM_ROPE_NEOX, false, false, false, "attention_bias", false, true, 32768, "qwen2",
     SM_FEAT_QK_NORM, SM_KEYS_TEXT},
    /* Phi-3 / Phi-4-mini: conversion/phi.py Phi3MiniModel; fused qkv_proj and gate_up_proj kept
     * fused (attn_qkv, ffn_up), sliding_window written (a window on every layer: swa_pattern 0);
     * tokenizer pre "default" (SPM) */
    {"Phi3ForCausalLM", "phi3", SM_ROPE_NEOX, false, false, false, NULL, false, true, 4096, "default",
     SM_FEAT_FUSED | SM_FEAT_SWA, SM_KEYS_PHI3},
    {"Gemma2ForCausalLM", "gemma2", SM_ROPE_NEOX, false, false, false, NULL, false, false, 8192, NULL,
     SM_FEAT_GELU_TANH | SM_FEAT_EMBD_SCALE | SM_FEAT_POST_NORMS | SM_FEAT_SOFTCAP | SM_FEAT_SWA | SM_FEAT_NORM_SHIFT |
         SM_FEAT_SPM_NO_SPACE_PREFIX,
     SM_KEYS_GEMMA2},
    /* Gemma 3 text models (conversion/gemma.py Gemma3Model): Gemma 2's block with q/k norms, no
     * attention soft-capping, a local rope base on the sliding layers; the language model of a
     * Gemma3ForConditionalGeneration checkpoint (text_config, language_model.*) likewise */
    {"Gemma3ForCausalLM", "gemma3", SM_ROPE_NEOX, false, false, false, NULL, false, false, 131072, NULL, GEMMA3_FEATURES,
     SM_KEYS_GEMMA3},
    {"Gemma3ForConditionalGeneration", "gemma3", SM_ROPE_NEOX, false, false, false, NULL, false, false, 131072, NULL,
     GEMMA3_FEATURES | SM_FEAT_VLM_TEXT, SM_KEYS_GEMMA3},
    /* mixtures of experts: Mixtral (conversion/llama.py LlamaModel: GGUF llama with expert counts) and
     * Qwen3-MoE (conversion/qwen.py Qwen3MoeModel, Qwen2MoeModel's keys) */
    {"MixtralForCausalLM", "llama", SM_ROPE_NORM, true, true, false, NULL, false, true, 131072, "llama-bpe",
     SM_FEAT_MOE | SM_FEAT_MOE_BSM | SM_FEAT_TOKCFG_SPACE_PREFIX, SM_KEYS_TEXT},
    {"Qwen3MoeForCausalLM", "qwen3moe", SM_ROPE_NEOX, false, false, false, "attention_bias", false, true, 32768, "qwen2",
     SM_FEAT_QK_NORM | SM_FEAT_MOE, SM_KEYS_QWEN_MOE},
    {NULL, "mistral", SM_ROPE_NORM, false, false, false, NULL, false, false, 0, NULL, SM_FEAT_TOKCFG_SPACE_PREFIX,
     SM_KEYS_TEXT},
};
#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])

const sm_arch_info *sm_arch_by_hf(const char *hf_name) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (ARCHS[i].hf_name && !strcmp(ARCHS[i].hf_name, hf_name)) return &ARCHS[i];
    return NULL;
}

const sm_arch_info *sm_arch_by_gguf(const char *gguf_arch) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(ARCHS[i].gguf_arch, gguf_arch)) return &ARCHS[i];
    return NULL;
}

const char *sm_supported_archs(void) {
    static char buf[1024];
    if (!buf[0]) {
        size_t k = 0;
        for (size_t i = 0; i < N_ARCHS && k < sizeof buf; i++)
            if (ARCHS[i].hf_name)
                k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", k ? ", " : "", ARCHS[i].hf_name);
    }
    return buf;
}

const char *sm_supported_gguf_archs(void) {
    static char buf[1024];
    if (!buf[0]) {
        size_t k = 0;
        for (size_t i = 0; i < N_ARCHS && k < sizeof buf; i++)
            if (sm_arch_by_gguf(ARCHS[i].gguf_arch) == &ARCHS[i])
                k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", k ? ", " : "", ARCHS[i].gguf_arch);
    }
    return buf;
}

void sm_vocab_apply_arch(const sm_hparams *hp, sm_vocab *v) {
    /* tokenizer_config.json's add_prefix_space is read by LlamaModel.set_vocab (Llama, Mistral,
     * Mixtral), not by Qwen2/Qwen3/Phi-3/Gemma's converters: for those it is as if absent */
    if ((v->explicit_flags & SM_VOCAB_PREFIX_FROM_TOKCFG) && !(hp->features & SM_FEAT_TOKCFG_SPACE_PREFIX)) {
        v->add_space_prefix = (v->explicit_flags & SM_VOCAB_PREFIX_WAS_ON) != 0;
        if (!(v->explicit_flags & SM_VOCAB_PREFIX_WAS_STATED)) v->explicit_flags &= ~(unsigned)SM_VOCAB_HAS_ADD_SPACE_PREFIX;
    }
    v->explicit_flags &= ~(unsigned)(SM_VOCAB_PREFIX_FROM_TOKCFG | SM_VOCAB_PREFIX_WAS_ON | SM_VOCAB_PREFIX_WAS_STATED);
    if ((hp->features & SM_FEAT_SPM_NO_SPACE_PREFIX) && v->kind == SM_VOCAB_SPM) {
        v->add_space_prefix = false;
        v->explicit_flags |= SM_VOCAB_HAS_ADD_SPACE_PREFIX | SM_VOCAB_ADD_SPACE_PREFIX_LAST; /* Gemma{2,3}Model.set_vocab */
    }
}

/* ---- typed config fields ---- */

/* An integer field: 1 and *out if present, 0 if absent or null, -1 (error) if not an integer in [lo, hi]. */
static int get_int(const cJSON *cfg, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return sm_error("%s: \"%s\": expected an integer in [%lld, %lld]", path, key, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return 1;
}

static int need_int(const cJSON *cfg, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    int r = get_int(cfg, path, key, lo, hi, out);
    if (r == 0) return sm_error("%s: missing \"%s\"", path, key);
    return r < 0 ? -1 : 0;
}

/* A positive finite number: 1 if present, 0 if absent or null, -1 if malformed. */
static int get_pos_float(const cJSON *cfg, const char *path, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble) || v->valuedouble > 1e30)
        return sm_error("%s: \"%s\": expected a positive number", path, key);
    *out = (float)v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *cfg, const char *path, const char *key, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return sm_error("%s: \"%s\": expected true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 1;
}

/* ---- architecture-specific fields ---- */

/* Biases switched on by config keys (Llama's attention_bias / mlp_bias, Qwen3's attention_bias). */
static int bias_keys(const sm_arch_info *a, const cJSON *cfg, const char *path, sm_hparams *hp) {
    bool b = false;
    if (a->bias_key) {
        if (get_bool(cfg, path, a->bias_key, &b) < 0) return -1;
        hp->qkv_bias |= b;
        hp->attn_out_bias = b;
    }
    b = false;
    if (a->mlp_bias_key && get_bool(cfg, path, "mlp_bias", &b) < 0) return -1;
    hp->mlp_bias = b;
    return 0;
}

static int sliding_window_extras(const cJSON *cfg, const char *path, sm_hparams *hp) {
    /* Recorded only: llama.cpp's converter writes no sliding-window key for the llama and qwen2
     * architectures (Mistral 7B v0.1's 4096 window equals its training context; Qwen2 ships
     * use_sliding_window: false). */
    int64_t w = 0;
    if (get_int(cfg, path, "sliding_window", 0, MAX_DIM * 64, &w) < 0) return -1;
    bool use = true;
    if (get_bool(cfg, path, "use_sliding_window", &use) < 0) return -1;
    hp->sliding_window = use ? w : 0;
    return 0;
}

/* Phi3MiniModel: original_max_position_embeddings is required (the converter writes it); a
 * partial rotary factor (Phi-4-mini's 0.75) rotates int(factor * hidden_size) / heads dimensions
 * of each head (rope.dimension_count; transformers: int(head_dim * factor), the same for the
 * released configs, else refused); longrope's factors and attention factor: model/longrope.c. */
static int phi3_extras(const cJSON *cfg, const char *path, sm_hparams *hp) {
    if (need_int(cfg, path, "original_max_position_embeddings", 1, MAX_DIM * 64, &hp->rope_scaling_orig_ctx)) return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "partial_rotary_factor");
    double prf = 1.0;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !(v->valuedouble <= 1))
            return sm_error("%s: \"partial_rotary_factor\": expected a number in (0, 1]", path);
        prf = v->valuedouble;
    }
    hp->n_rot = (int64_t)(prf * (double)hp->n_embd) / hp->n_head;
    if (hp->n_rot != (int64_t)((double)hp->head_dim * prf) || hp->n_rot < 2 || hp->n_rot % 2)
        return sm_error("%s: \"partial_rotary_factor\": %g gives %lld rotated dimensions per head to llama.cpp's "
                        "converter and %lld to transformers (an even number, the same for both, is needed)", path, prf,
                        (long long)hp->n_rot, (long long)((double)hp->head_dim * prf));
    if (!strcmp(hp->rope_scaling_type, "longrope")) return sm_longrope_from_config(cfg, path, hp, NULL, NULL);
    return 0;
}

/* Gemma 2's fields (transformers' Gemma2Config defaults; llama.cpp's Gemma2Model writes the
 * soft-capping values and sliding_window, always ties the output to the embeddings and drops
 * lm_head). */
static int gemma2_extras(const cJSON *cfg, const char *path, sm_hparams *hp) {
    hp->tied_embeddings = true;
    hp->attn_softcap = 50.0f;
    hp->final_softcap = 30.0f;
    float qpas = 256.0f;
    int64_t w = 4096;
    const char *capkeys[2] = {"attn_logit_softcapping", "final_logit_softcapping"};
    float *caps[2] = {&hp->attn_softcap, &hp->final_softcap};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, capkeys[i]);
        if (v && cJSON_IsNull(v))
            return sm_error("%s: \"%s\" is null; llama.cpp's converter needs a number (soft-capping off is not supported)",
                            path, capkeys[i]);
        if (get_pos_float(cfg, path, capkeys[i], caps[i]) < 0) return -1;
    }
    if (get_pos_float(cfg, path, "query_pre_attn_scalar", &qpas) < 0) return -1;
    if (get_int(cfg, path, "sliding_window", 1, MAX_DIM * 64, &w) < 0) return -1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_activation");
    if (!act || cJSON_IsNull(act)) act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && !cJSON_IsNull(act) &&
        (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_pytorch_tanh") && strcmp(act->valuestring, "gelu"))))
        return sm_error("%s: \"hidden_activation\": expected \"gelu_pytorch_tanh\"", path);
    hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
    hp->sliding_window = w;
    hp->swa_pattern = 2;
    hp->explicit_head_dim = true;
    return 0;
}

/* Gemma 3's fields (transformers' Gemma3TextConfig defaults; Gemma3Model writes final soft-capping
 * when set and asserts there is no attention soft-capping). */
/* Newer transformers write rope_parameters per layer type ({"full_attention": {...},
 * "sliding_attention": {...}}, Gemma 3): that layer type's object, or NULL for the flat form. */
static const cJSON *rope_params_of(const cJSON *cfg, const char *layer_type) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters"), layer_type);
    return cJSON_IsObject(o) ? o : NULL;
}

static int gemma3_extras(const cJSON *cfg, const char *path, sm_hparams *hp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "attn_logit_softcapping");
    if (v && !cJSON_IsNull(v))
        return sm_error("%s: \"attn_logit_softcapping\" is set; Gemma 3 has none (llama.cpp's converter refuses it)", path);
    if (get_pos_float(cfg, path, "final_logit_softcapping", &hp->final_softcap) < 0) return -1;
    hp->attn_softcap = 0;
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings")) hp->tied_embeddings = true;
    const cJSON *full = rope_params_of(cfg, "full_attention"), *local = rope_params_of(cfg, "sliding_attention");
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "rope_theta") && !cJSON_GetObjectItemCaseSensitive(full, "rope_theta"))
        hp->rope_theta = 1000000.0f;
    float qpas = 256.0f;
    if (get_pos_float(cfg, path, "query_pre_attn_scalar", &qpas) < 0) return -1;
    hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
    hp->rope_theta_swa = 10000.0f;
    if (get_pos_float(cfg, path, "rope_local_base_freq", &hp->rope_theta_swa) < 0) return -1;
    if (local) { /* rope_parameters.sliding_attention: the local base, unscaled as llama.cpp runs it */
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(local, "rope_type");
        if (t && !cJSON_IsNull(t) && (!cJSON_IsString(t) || strcmp(t->valuestring, "default")))
            return sm_error("%s: \"rope_parameters\".\"sliding_attention\".\"rope_type\": expected \"default\" (llama.cpp "
                            "scales only the global layers' rope)", path);
        if (get_pos_float(local, path, "rope_theta", &hp->rope_theta_swa) < 0) return -1;
    }
    int64_t w = 4096, pattern = 6;
    if (get_int(cfg, path, "sliding_window", 1, MAX_DIM * 64, &w) < 0 ||
        get_int(cfg, path, "sliding_window_pattern", 1, 65536, &pattern) < 0)
        return -1;
    /* llama.cpp's converter writes no pattern: its loader assumes 6 */
    if (pattern != 6)
        return sm_error("%s: \"sliding_window_pattern\": %lld; llama.cpp's GGUF keeps none and assumes 6", path,
                        (long long)pattern);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(cfg, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != (int)hp->n_layer)
            return sm_error("%s: \"layer_types\": expected one entry per layer", path);
        for (int l = 0; l < (int)hp->n_layer; l++) {
            const cJSON *e = cJSON_GetArrayItem(lt, l);
            const bool sliding = l % pattern < pattern - 1;
            if (!cJSON_IsString(e) || strcmp(e->valuestring, sliding ? "sliding_attention" : "full_attention"))
                return sm_error("%s: \"layer_types\"[%d]: expected \"%s\" (every 6th layer global, as llama.cpp runs it)",
                                path, l, sliding ? "sliding_attention" : "full_attention");
        }
    }
    hp->sliding_window = w;
    hp->swa_pattern = (int)pattern;
    hp->explicit_head_dim = true;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_activation");
    if (act && !cJSON_IsNull(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu_pytorch_tanh")))
        return sm_error("%s: \"hidden_activation\": expected \"gelu_pytorch_tanh\"", path);
    return 0;
}

/* A mixture of experts (transformers' MixtralConfig / Qwen3MoeConfig; the counts under the names
 * convert_hf_to_gguf.py's TextModel looks for). llama.cpp's llama and qwen3moe graphs always
 * renormalise the chosen experts' weights and make every layer sparse: a config that says otherwise
 * is refused rather than run differently from llama.cpp. */
#define MAX_EXPERTS 512 /* LLAMA_MAX_EXPERTS */
static int moe_extras(const sm_arch_info *a, const cJSON *cfg, const char *path, sm_hparams *hp) {
    const char *ne_key = cJSON_GetObjectItemCaseSensitive(cfg, "num_local_experts") ? "num_local_experts" : "num_experts";
    if (need_int(cfg, path, ne_key, 1, MAX_EXPERTS, &hp->n_expert)) return -1;
    hp->n_expert_used = 2;
    if (get_int(cfg, path, "num_experts_per_tok", 1, hp->n_expert, &hp->n_expert_used) < 0) return -1;
    hp->n_ff_exp = hp->n_ff;
    if (a->gguf_keys != SM_KEYS_QWEN_MOE) return 0;
    if (need_int(cfg, path, "moe_intermediate_size", 1, MAX_DIM, &hp->n_ff_exp)) return -1;
    bool norm = false;
    if (get_bool(cfg, path, "norm_topk_prob", &norm) < 0) return -1;
    if (!norm)
        return sm_error("%s: \"norm_topk_prob\" is false or absent; llama.cpp's qwen3moe graph always renormalises the "
                        "chosen experts' weights (only norm_topk_prob true is supported)", path);
    int64_t step = 1;
    if (get_int(cfg, path, "decoder_sparse_step", 1, 65536, &step) < 0) return -1;
    const cJSON *mlp_only = cJSON_GetObjectItemCaseSensitive(cfg, "mlp_only_layers");
    if (step != 1 || (mlp_only && !cJSON_IsNull(mlp_only) && (!cJSON_IsArray(mlp_only) || cJSON_GetArraySize(mlp_only))))
        return sm_error("%s: \"decoder_sparse_step\" / \"mlp_only_layers\" make some layers dense; llama.cpp's qwen3moe "
                        "makes every layer a mixture of experts (only decoder_sparse_step 1 without mlp_only_layers "
                        "is supported)", path);
    return 0;
}

/* A multimodal config's text_config over its top level (TextModel.__init__), and the defaults
 * of transformers' Gemma3TextConfig for the sizes a Gemma 3 config may leave out. */
static cJSON *text_config(cJSON *cfg) {
    cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    if (cJSON_IsObject(tc))
        for (const cJSON *e = tc->child; e; e = e->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, e->string);
            cJSON_AddItemToObject(cfg, e->string, cJSON_Duplicate(e, 1));
        }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
    const sm_arch_info *row = cJSON_IsString(a0) ? sm_arch_by_hf(a0->valuestring) : NULL;
    if (row && row->gguf_keys == SM_KEYS_GEMMA3) {
        static const struct { const char *key; double v; } DEF[] = {
            {"vocab_size", 262208}, {"hidden_size", 2304}, {"intermediate_size", 9216}, {"num_hidden_layers", 26},
            {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"head_dim", 256}, {"rms_norm_eps", 1e-6}};
        for (size_t i = 0; i < sizeof DEF / sizeof DEF[0]; i++)
            if (!cJSON_GetObjectItemCaseSensitive(cfg, DEF[i].key)) cJSON_AddNumberToObject(cfg, DEF[i].key, DEF[i].v);
    }
    return cfg;
}

/* ---- rope scaling (rope_scaling / rope_parameters), as TextModel.set_gguf_parameters reads it ---- */

static int parse_rope(const cJSON *cfg, const char *path, sm_hparams *hp) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (rope_params_of(cfg, "full_attention")) rp = rope_params_of(cfg, "full_attention"); /* the global layers' */
    if (!rp || cJSON_IsNull(rp)) rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    hp->rope_theta = 10000.0f;
    int r = get_pos_float(cfg, path, "rope_theta", &hp->rope_theta);
    if (r < 0) return -1;
    if (!rp || cJSON_IsNull(rp)) return 0;
    if (!cJSON_IsObject(rp)) return sm_error("%s: \"rope_scaling\": expected an object or null", path);
    if (r == 0 && get_pos_float(rp, path, "rope_theta", &hp->rope_theta) < 0) return -1;

    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rp, "type");
    if (!t || cJSON_IsNull(t)) return 0;
    if (!cJSON_IsString(t)) return sm_error("%s: rope scaling \"rope_type\": expected a string", path);
    const char *type = t->valuestring;
    float factor = 0;
    int has_factor = get_pos_float(rp, path, "factor", &factor);
    if (has_factor < 0) return -1;
    int64_t orig = 0;
    int has_orig = get_int(rp, path, "original_max_position_embeddings", 1, MAX_DIM * 64, &orig);
    if (has_orig == 0) has_orig = get_int(cfg, path, "original_max_position_embeddings", 1, MAX_DIM * 64, &orig);
    if (has_orig < 0) return -1;

    if (!strcmp(type, "default") || !strcmp(type, "dynamic")) {
        /* "dynamic" (NTK) changes nothing inside the trained context; llama.cpp's converter
         * writes no key for it either. */
        return 0;
    }
    if (!strcmp(type, "linear") || !strcmp(type, "yarn")) {
        if (!has_factor) return 0; /* the converter writes nothing without a factor */
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "%s", type);
        hp->rope_scaling_factor = factor;
        if (type[0] == 'y') {
            if (!has_orig)
                return sm_error("%s: yarn rope scaling needs \"original_max_position_embeddings\"", path);
            hp->rope_scaling_orig_ctx = orig;
            static const struct { const char *k1, *k2; unsigned bit; size_t off; } EXTRA[] = {
                {"extrapolation_factor", NULL, 1, offsetof(sm_hparams, rope_yarn_ext_factor)},
                {"attention_factor", "attn_factor", 2, offsetof(sm_hparams, rope_yarn_attn_factor)},
                {"beta_fast", NULL, 4, offsetof(sm_hparams, rope_yarn_beta_fast)},
                {"beta_slow", NULL, 8, offsetof(sm_hparams, rope_yarn_beta_slow)},
            };
            for (size_t i = 0; i < sizeof EXTRA / sizeof EXTRA[0]; i++) {
                const char *key = EXTRA[i].k1;
                if (EXTRA[i].k2 && !cJSON_GetObjectItemCaseSensitive(rp, key)) key = EXTRA[i].k2;
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(rp, key);
                if (!v || cJSON_IsNull(v)) continue;
                if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                    return sm_error("%s: rope scaling \"%s\": expected a number", path, key);
                *(float *)((char *)hp + EXTRA[i].off) = (float)v->valuedouble;
                hp->rope_yarn_set |= EXTRA[i].bit;
            }
        }
        return 0;
    }
    if (!strcasecmp(type, "llama3")) {
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "llama3");
        hp->rope_scaling_factor = has_factor ? factor : 8.0f;
        hp->rope_llama3_low_freq = 1.0f;
        hp->rope_llama3_high_freq = 4.0f;
        if (get_pos_float(rp, path, "low_freq_factor", &hp->rope_llama3_low_freq) < 0) return -1;
        if (get_pos_float(rp, path, "high_freq_factor", &hp->rope_llama3_high_freq) < 0) return -1;
        hp->rope_scaling_orig_ctx = has_orig ? orig : 8192;
        if (hp->rope_llama3_low_freq == hp->rope_llama3_high_freq)
            return sm_error("%s: llama3 rope scaling: low_freq_factor equals high_freq_factor", path);
        return 0;
    }
    if (!strcmp(type, "longrope") || !strcmp(type, "su")) { /* Phi-3 only: phi3_extras reads the rest */
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "longrope");
        return 0;
    }
    return sm_error("%s: rope scaling type \"%s\" is not supported (supported: linear, yarn, llama3, dynamic)",
                    path, type);
}

/* ---- config.json ---- */

static const sm_arch_info *find_arch(const cJSON *cfg, const char *path) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 1 || !cJSON_IsString(cJSON_GetArrayItem(a, 0))) {
        sm_error("%s: missing \"architectures\" (supported: %s)", path, sm_supported_archs());
        return NULL;
    }
    const char *name = cJSON_GetArrayItem(a, 0)->valuestring;
    const sm_arch_info *row = sm_arch_by_hf(name);
    if (row) return row;
    sm_error("%s: architecture \"%.64s\" is not supported (supported: %s)", path, name, sm_supported_archs());
    return NULL;
}

static int from_config(const cJSON *cfg, const char *path, sm_hparams *hp) {
    if (!cJSON_IsObject(cfg)) return sm_error("%s: expected a JSON object", path);
    const sm_arch_info *a = find_arch(cfg, path);
    if (!a) return -1;
    snprintf(hp->hf_arch, sizeof hp->hf_arch, "%s", a->hf_name);
    snprintf(hp->arch, sizeof hp->arch, "%s", a->gguf_arch);
    hp->rope_hf_layout = a->permute_qk;
    hp->llama_keys = a->llama_keys;
    hp->qkv_bias = a->qkv_bias;
    hp->features = a->features;
    hp->gguf_keys = a->gguf_keys;

    if (need_int(cfg, path, "vocab_size", 1, MAX_DIM, &hp->n_vocab) ||
        need_int(cfg, path, "hidden_size", 1, MAX_DIM, &hp->n_embd) ||
        need_int(cfg, path, "intermediate_size", 1, MAX_DIM, &hp->n_ff) ||
        need_int(cfg, path, "num_hidden_layers", 1, 65536, &hp->n_layer) ||
        need_int(cfg, path, "num_attention_heads", 1, 65536, &hp->n_head))
        return -1;
    hp->n_head_kv = hp->n_head;
    if (get_int(cfg, path, "num_key_value_heads", 1, 65536, &hp->n_head_kv) < 0) return -1;
    int r = get_int(cfg, path, "head_dim", 1, 65536, &hp->head_dim);
    if (r < 0) return -1;
    hp->explicit_head_dim = r == 1;
    if (!r) {
        if (hp->n_embd % hp->n_head)
            return sm_error("%s: hidden_size %lld is not a multiple of num_attention_heads %lld", path,
                            (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->n_head % hp->n_head_kv)
        return sm_error("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", path,
                        (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->head_dim % 2) return sm_error("%s: head_dim %lld is odd; rope needs pairs", path, (long long)hp->head_dim);
    if (hp->n_head * hp->head_dim > MAX_DIM) return sm_error("%s: attention width too large", path);

    hp->n_ctx_train = a->default_ctx;
    if (get_int(cfg, path, "max_position_embeddings", 1, MAX_DIM * 64, &hp->n_ctx_train) < 0) return -1;
    hp->rms_eps = 1e-6f;
    if (get_pos_float(cfg, path, "rms_norm_eps", &hp->rms_eps) < 0) return -1;
    if (get_bool(cfg, path, "tie_word_embeddings", &hp->tied_embeddings) < 0) return -1;
    if (parse_rope(cfg, path, hp)) return -1;
    if (bias_keys(a, cfg, path, hp)) return -1;
    if (!strcmp(hp->rope_scaling_type, "longrope") && a->gguf_keys != SM_KEYS_PHI3)
        return sm_error("%s: rope scaling \"longrope\" is not supported for %s (only Phi3ForCausalLM, as llama.cpp)",
                        path, a->hf_name);
    if (a->gguf_keys == SM_KEYS_PHI3 && phi3_extras(cfg, path, hp)) return -1;
    if ((a->features & SM_FEAT_MOE) && moe_extras(a, cfg, path, hp)) return -1;
    if (a->gguf_keys == SM_KEYS_GEMMA3) return gemma3_extras(cfg, path, hp);
    if (a->gguf_keys == SM_KEYS_GEMMA2) return gemma2_extras(cfg, path, hp);
    return a->sliding_window_key ? sliding_window_extras(cfg, path, hp) : 0;
}

int sm_hparams_from_hf_config(const char *config_json_path, sm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(config_json_path, CONFIG_MAX_BYTES, &text, &len)) return -1;
    const char *end = NULL;
    cJSON *cfg = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!cfg) {
        size_t off = end ? (size_t)(end - text) : 0;
        free(text);
        return sm_error("%s: offset %zu: invalid JSON", config_json_path, off);
    }
    free(text);
    int rc = from_config(text_config(cfg), config_json_path, hp);
    cJSON_Delete(cfg);
    return rc;
}

int sm_hparams_from_llama2c(const sm_llama2c_config *c, sm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    if (c->dim <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->dim % c->n_heads || c->n_heads % c->n_kv_heads)
        return sm_error("llama2.c: inconsistent header (dim %d, n_heads %d, n_kv_heads %d)", c->dim, c->n_heads,
                        c->n_kv_heads);
    snprintf(hp->arch, sizeof hp->arch, "llama");
    hp->n_vocab = c->vocab_size;
    hp->n_embd = c->dim;
    hp->n_ff = c->hidden_dim;
    hp->n_layer = c->n_layers;
    hp->n_head = c->n_heads;
    hp->n_head_kv = c->n_kv_heads;
    hp->head_dim = c->dim / c->n_heads;
    hp->n_ctx_train = c->seq_len;
    hp->rope_theta = 10000.0f;
    hp->rms_eps = 1e-5f;
    hp->tied_embeddings = c->shared_classifier;
    hp->llama_keys = true;
    return 0;
}

int sm_rope_llama3_factors(const sm_hparams *hp, float *out, int64_t n) {
    if (strcmp(hp->rope_scaling_type, "llama3") != 0 || n != hp->head_dim / 2)
        return sm_error("rope factors: not a llama3 rope scaling, or wrong length");
    /* convert_hf_to_gguf.py LlamaModel.generate_extra_tensors, in its float32 torch arithmetic:
     * freqs = 1 / theta^(arange(0, dim, 2) / dim) and every step on them in float32 (torch's
     * scalar / tensor is reciprocal(tensor) * scalar, the Python scalars cast to float32) */
    const float factor = hp->rope_scaling_factor, lo = hp->rope_llama3_low_freq, hi = hp->rope_llama3_high_freq;
    const double old_ctx = (double)hp->rope_scaling_orig_ctx;
    const float low_freq_wavelen = (float)(old_ctx / lo), high_freq_wavelen = (float)(old_ctx / hi);
    const float two_pi = (float)(2 * M_PI), octx = (float)old_ctx, span = (float)((double)hi - (double)lo);
    const int64_t dim = hp->head_dim;
    for (int64_t i = 0; i < n; i++) {
        const float e = (float)(2 * i) / (float)dim;
        const float freq = 1.0f / (float)pow((double)hp->rope_theta, (double)e);
        const float wavelen = (1.0f / freq) * two_pi;
        float f;
        if (wavelen < high_freq_wavelen) f = 1;
        else if (wavelen > low_freq_wavelen) f = factor;
        else {
            const float smooth = ((1.0f / wavelen) * octx - lo) / span;
            f = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
        out[i] = f;
    }
    return 0;
}

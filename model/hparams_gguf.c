/* hparams_gguf.c - sm_hparams <-> GGUF metadata: the <arch>.* keys llama.cpp reads, written
 * as llama.cpp's convert_hf_to_gguf.py writes them (TextModel.set_gguf_parameters and
 * LlamaModel.set_gguf_parameters; key names from gguf-py/gguf/constants.py). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *key(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* conversion/phi.py Phi3MiniModel.set_gguf_parameters: its own order, the original context
 * always, rope.dimension_count and sliding_window (0 when the config has none). */
static void phi3_keys(const sm_hparams *hp, int file_type, sm_meta *w) {
    char k[128];
    const char *a = hp->arch;
    sm_meta_set_u32(w, key(k, sizeof k, a, "context_length"), (uint32_t)hp->n_ctx_train);
    sm_meta_set_u32(w, key(k, sizeof k, a, "rope.scaling.original_context_length"), (uint32_t)hp->rope_scaling_orig_ctx);
    sm_meta_set_u32(w, key(k, sizeof k, a, "embedding_length"), (uint32_t)hp->n_embd);
    sm_meta_set_u32(w, key(k, sizeof k, a, "feed_forward_length"), (uint32_t)hp->n_ff);
    sm_meta_set_u32(w, key(k, sizeof k, a, "block_count"), (uint32_t)hp->n_layer);
    sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count"), (uint32_t)hp->n_head);
    sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count_kv"), (uint32_t)hp->n_head_kv);
    sm_meta_set_f32(w, key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), hp->rms_eps);
    sm_meta_set_u32(w, key(k, sizeof k, a, "rope.dimension_count"), (uint32_t)hp->head_dim);
    sm_meta_set_f32(w, key(k, sizeof k, a, "rope.freq_base"), hp->rope_theta);
    if (file_type >= 0) sm_meta_set_u32(w, "general.file_type", (uint32_t)file_type);
    sm_meta_set_u32(w, key(k, sizeof k, a, "attention.sliding_window"), (uint32_t)hp->sliding_window);
}

void sm_hparams_to_meta(const sm_hparams *hp, sm_meta *w) { sm_hparams_to_meta_ftype(hp, -1, w); }

void sm_hparams_to_meta_ftype(const sm_hparams *hp, int file_type, sm_meta *w) {
    char k[128];
    const char *a = hp->arch;
    sm_meta_set_str(w, "general.architecture", a);
    const sm_arch_info *ai = sm_arch_by_gguf(a);
    if (ai && (ai->features & SM_FEAT_GEMMA2_KEYS)) { /* Gemma2Model.set_gguf_parameters, in its order */
        sm_meta_set_u32(w, key(k, sizeof k, a, "context_length"), (uint32_t)hp->n_ctx_train);
        sm_meta_set_u32(w, key(k, sizeof k, a, "embedding_length"), (uint32_t)hp->n_embd);
        sm_meta_set_u32(w, key(k, sizeof k, a, "block_count"), (uint32_t)hp->n_layer);
        sm_meta_set_u32(w, key(k, sizeof k, a, "feed_forward_length"), (uint32_t)hp->n_ff);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count"), (uint32_t)hp->n_head);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count_kv"), (uint32_t)hp->n_head_kv);
        sm_meta_set_f32(w, key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), hp->rms_eps);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.key_length"), (uint32_t)hp->head_dim);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.value_length"), (uint32_t)hp->head_dim);
        if (file_type >= 0) sm_meta_set_u32(w, "general.file_type", (uint32_t)file_type);
        sm_meta_set_f32(w, key(k, sizeof k, a, "attn_logit_softcapping"), hp->attn_softcap);
        sm_meta_set_f32(w, key(k, sizeof k, a, "final_logit_softcapping"), hp->final_softcap);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.sliding_window"), (uint32_t)hp->sliding_window);
        return;
    }
    if (hp->gguf_keys == SM_KEYS_PHI3) {
        phi3_keys(hp, file_type, w);
        return;
    }
    sm_meta_set_u32(w, key(k, sizeof k, a, "block_count"), (uint32_t)hp->n_layer);
    sm_meta_set_u32(w, key(k, sizeof k, a, "context_length"), (uint32_t)hp->n_ctx_train);
    sm_meta_set_u32(w, key(k, sizeof k, a, "embedding_length"), (uint32_t)hp->n_embd);
    sm_meta_set_u32(w, key(k, sizeof k, a, "feed_forward_length"), (uint32_t)hp->n_ff);
    sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count"), (uint32_t)hp->n_head);
    sm_meta_set_u32(w, key(k, sizeof k, a, "attention.head_count_kv"), (uint32_t)hp->n_head_kv);
    if (!strcmp(hp->rope_scaling_type, "linear") || !strcmp(hp->rope_scaling_type, "yarn")) {
        sm_meta_set_str(w, key(k, sizeof k, a, "rope.scaling.type"), hp->rope_scaling_type);
        sm_meta_set_f32(w, key(k, sizeof k, a, "rope.scaling.factor"), hp->rope_scaling_factor);
        if (hp->rope_scaling_type[0] == 'y') {
            sm_meta_set_u32(w, key(k, sizeof k, a, "rope.scaling.original_context_length"),
                            (uint32_t)hp->rope_scaling_orig_ctx);
            if (hp->rope_yarn_set & 1)
                sm_meta_set_f32(w, key(k, sizeof k, a, "rope.scaling.yarn_ext_factor"), hp->rope_yarn_ext_factor);
            if (hp->rope_yarn_set & 2)
                sm_meta_set_f32(w, key(k, sizeof k, a, "rope.scaling.yarn_attn_factor"), hp->rope_yarn_attn_factor);
            if (hp->rope_yarn_set & 4)
                sm_meta_set_f32(w, key(k, sizeof k, a, "rope.scaling.yarn_beta_fast"), hp->rope_yarn_beta_fast);
            if (hp->rope_yarn_set & 8)
                sm_meta_set_f32(w, key(k, sizeof k, a, "rope.scaling.yarn_beta_slow"), hp->rope_yarn_beta_slow);
        }
    }
    sm_meta_set_f32(w, key(k, sizeof k, a, "rope.freq_base"), hp->rope_theta);
    sm_meta_set_f32(w, key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), hp->rms_eps);
    if (hp->explicit_head_dim || hp->head_dim * hp->n_head != hp->n_embd) {
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.key_length"), (uint32_t)hp->head_dim);
        sm_meta_set_u32(w, key(k, sizeof k, a, "attention.value_length"), (uint32_t)hp->head_dim);
    }
    if (file_type >= 0) sm_meta_set_u32(w, "general.file_type", (uint32_t)file_type);
    if (hp->llama_keys) {
        sm_meta_set_u32(w, key(k, sizeof k, a, "vocab_size"), (uint32_t)hp->n_vocab);
        sm_meta_set_u32(w, key(k, sizeof k, a, "rope.dimension_count"), (uint32_t)hp->head_dim);
    }
}

static int get_dim(const sm_gguf *g, const char *k, int64_t *out, bool required) {
    uint64_t v;
    if (!sm_gguf_find(g, k)) return required ? sm_error("%s: missing key %s", sm_gguf_path(g), k) : 0;
    if (sm_gguf_get_u64(g, k, &v)) return -1;
    if (v == 0 || v > ((uint64_t)1 << 31)) return sm_error("%s: key %s: value %llu out of range", sm_gguf_path(g), k,
                                                          (unsigned long long)v);
    *out = (int64_t)v;
    return 0;
}

static int get_float(const sm_gguf *g, const char *k, float *out) {
    if (!sm_gguf_find(g, k)) return 0;
    double d;
    if (sm_gguf_get_f64(g, k, &d)) return -1;
    *out = (float)d;
    return 0;
}

int sm_hparams_from_gguf(const sm_gguf *g, sm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const char *arch = sm_gguf_get_str(g, "general.architecture");
    if (!arch) return sm_error("%s: missing general.architecture", sm_gguf_path(g));
    if (strlen(arch) >= sizeof hp->arch) return sm_error("%s: general.architecture too long", sm_gguf_path(g));
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    const char *name = sm_gguf_get_str(g, "general.name");
    snprintf(hp->name, sizeof hp->name, "%s", name ? name : "");
    char k[128];
    const char *a = hp->arch;
    if (get_dim(g, key(k, sizeof k, a, "block_count"), &hp->n_layer, true) ||
        get_dim(g, key(k, sizeof k, a, "embedding_length"), &hp->n_embd, true) ||
        get_dim(g, key(k, sizeof k, a, "feed_forward_length"), &hp->n_ff, true) ||
        get_dim(g, key(k, sizeof k, a, "attention.head_count"), &hp->n_head, true) ||
        get_dim(g, key(k, sizeof k, a, "context_length"), &hp->n_ctx_train, true))
        return -1;
    hp->n_head_kv = hp->n_head;
    if (get_dim(g, key(k, sizeof k, a, "attention.head_count_kv"), &hp->n_head_kv, false)) return -1;
    hp->head_dim = hp->n_embd / hp->n_head;
    if (sm_gguf_find(g, key(k, sizeof k, a, "attention.key_length"))) {
        if (get_dim(g, k, &hp->head_dim, true)) return -1;
        hp->explicit_head_dim = true;
    }
    /* the runtime rotates whole heads (as llama.cpp requires of llama models: "invalid n_rot") */
    int64_t n_rot = hp->head_dim;
    if (get_dim(g, key(k, sizeof k, a, "rope.dimension_count"), &n_rot, false)) return -1;
    if (n_rot != hp->head_dim)
        return sm_error("%s: %s = %lld but the head size is %lld: %s", sm_gguf_path(g), k, (long long)n_rot,
                        (long long)hp->head_dim,
                        n_rot > hp->head_dim || n_rot % 2 ? "it must be even and at most the head size"
                                                          : "rotating part of a head is not supported (llama.cpp refuses it for llama)");
    const sm_tensor *emb = sm_gguf_find_tensor(g, "token_embd.weight");
    const sm_gguf_value *toks = sm_gguf_find(g, "tokenizer.ggml.tokens");
    if (sm_gguf_find(g, key(k, sizeof k, a, "vocab_size"))) {
        if (get_dim(g, k, &hp->n_vocab, true)) return -1;
    } else if (toks && toks->type == SM_GGUF_ARRAY) {
        hp->n_vocab = (int64_t)toks->v.arr.n;
    } else if (emb && emb->n_dims == 2) {
        hp->n_vocab = emb->shape[0];
    } else {
        return sm_error("%s: cannot tell the vocabulary size", sm_gguf_path(g));
    }
    hp->rope_theta = 10000.0f;
    if (get_float(g, key(k, sizeof k, a, "rope.freq_base"), &hp->rope_theta)) return -1;
    if (!sm_gguf_find(g, key(k, sizeof k, a, "attention.layer_norm_rms_epsilon")))
        return sm_error("%s: missing key %s", sm_gguf_path(g), k);
    if (get_float(g, k, &hp->rms_eps)) return -1;
    const char *rs = sm_gguf_get_str(g, key(k, sizeof k, a, "rope.scaling.type"));
    if (rs && strcmp(rs, "none") != 0) {
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "%s", rs);
        if (get_float(g, key(k, sizeof k, a, "rope.scaling.factor"), &hp->rope_scaling_factor)) return -1;
        if (sm_gguf_find(g, key(k, sizeof k, a, "rope.scaling.original_context_length")) &&
            get_dim(g, k, &hp->rope_scaling_orig_ctx, true))
            return -1;
        static const struct { const char *suffix; unsigned bit; size_t off; } YARN[] = {
            {"rope.scaling.yarn_ext_factor", 1, offsetof(sm_hparams, rope_yarn_ext_factor)},
            {"rope.scaling.yarn_attn_factor", 2, offsetof(sm_hparams, rope_yarn_attn_factor)},
            {"rope.scaling.yarn_beta_fast", 4, offsetof(sm_hparams, rope_yarn_beta_fast)},
            {"rope.scaling.yarn_beta_slow", 8, offsetof(sm_hparams, rope_yarn_beta_slow)},
        };
        for (size_t i = 0; i < sizeof YARN / sizeof YARN[0]; i++)
            if (sm_gguf_find(g, key(k, sizeof k, a, YARN[i].suffix))) {
                if (get_float(g, k, (float *)((char *)hp + YARN[i].off))) return -1;
                hp->rope_yarn_set |= YARN[i].bit;
            }
    } else if (sm_gguf_find_tensor(g, "rope_freqs.weight")) {
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "llama3"); /* factors come as a tensor */
    }
    hp->tied_embeddings = sm_gguf_find_tensor(g, "output.weight") == NULL;
    hp->qkv_bias = sm_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    hp->attn_out_bias = sm_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    hp->mlp_bias = sm_gguf_find_tensor(g, "blk.0.ffn_up.bias") != NULL;
    const sm_arch_info *ai = sm_arch_by_gguf(a); /* unknown: the runtime refuses it */
    hp->llama_keys = ai && ai->llama_keys;
    hp->features = ai ? ai->features : 0;
    hp->gguf_keys = ai ? ai->gguf_keys : SM_KEYS_TEXT;
    if (hp->gguf_keys == SM_KEYS_PHI3) {
        if (sm_gguf_find(g, key(k, sizeof k, a, "rope.scaling.original_context_length")) &&
            get_dim(g, k, &hp->rope_scaling_orig_ctx, true))
            return -1;
        if (sm_gguf_find(g, key(k, sizeof k, a, "attention.sliding_window"))) {
            uint64_t v;
            if (sm_gguf_get_u64(g, k, &v)) return -1;
            hp->sliding_window = (int64_t)(v > ((uint64_t)1 << 31) ? ((uint64_t)1 << 31) : v);
        }
        if (sm_gguf_find_tensor(g, "rope_factors_long.weight") || sm_gguf_find_tensor(g, "rope_factors_short.weight"))
            return sm_error("%s: longrope (rope_factors_long/short.weight) is not supported by the runtime yet",
                            sm_gguf_path(g));
    }
    if (ai && (ai->features & SM_FEAT_GEMMA2_KEYS)) { /* llama.cpp's llama_model_gemma2::load_hparams */
        if (get_float(g, key(k, sizeof k, a, "attn_logit_softcapping"), &hp->attn_softcap) ||
            get_float(g, key(k, sizeof k, a, "final_logit_softcapping"), &hp->final_softcap))
            return -1;
        hp->sliding_window = 4096; /* llama.cpp's default when the key is absent */
        if (sm_gguf_find(g, key(k, sizeof k, a, "attention.sliding_window")) &&
            get_dim(g, k, &hp->sliding_window, true))
            return -1;
        hp->swa_pattern = 2;
        /* query_pre_attn_scalar is not in the file: llama.cpp uses n_embd / n_head for the 46-layer
         * (27B) model and head_dim otherwise, as the released configs do */
        hp->attn_scale = (float)(1.0 / sqrt((double)(hp->n_layer == 46 ? hp->n_embd / hp->n_head : hp->head_dim)));
    }
    if (hp->n_head % hp->n_head_kv) return sm_error("%s: head_count is not a multiple of head_count_kv", sm_gguf_path(g));
    return 0;
}

int sm_ftype_for_type(sm_type t) {
    switch (t) {
    case SM_TYPE_F32: return 0;
    case SM_TYPE_F16: return 1;
    case SM_TYPE_Q8_0: return 7;
    case SM_TYPE_BF16: return 32;
    default: return -1;
    }
}

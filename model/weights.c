/* weights.c - sm_model_load: find a decoder's weights in a GGUF file, a Hugging Face model
 * directory or a llama2.c checkpoint, check every shape and type, and keep pointers into
 * the mapped files (norms and biases are copied to float; matrices never are, except the
 * linears of an HF GPTQ checkpoint, which are dequantized to float once at load). */
#include "arch_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM (1 << 20)      /* any width beyond this is a corrupt header, not a model */
#define MAX_LAYERS 1024

/* ---- finding a tensor by its GGUF name, whatever the source ---- */

static const sm_tensor *find(const sm_model *m, const char *name) {
    if (m->gguf) return sm_gguf_find_tensor(m->gguf, name);
    if (m->ckpt_names) {
        for (size_t i = 0; i < m->ckpt->n_tensors; i++)
            if (!strcmp(m->ckpt_names[i], name)) return &m->ckpt->tensors[i];
        return NULL;
    }
    return sm_ckpt_find(m->ckpt, name);
}

static const char *source(const sm_model *m) { return m->gguf ? sm_gguf_path(m->gguf) : m->ckpt->path; }

static int shape_error(const sm_model *m, const sm_tensor *t, const char *name, const char *expected) {
    char buf[96];
    return sm_error("%s: tensor %s has shape %s and type %s, expected %s", source(m), name,
                    sm_shape_str(t, buf, sizeof buf), sm_type_name(t->type), expected);
}

static int own(sm_model *m, float *v) {
    float **owned = realloc(m->owned, sizeof(float *) * (m->n_owned + 1));
    if (!owned) {
        free(v);
        return sm_error("out of memory");
    }
    m->owned = owned;
    m->owned[m->n_owned++] = v;
    return 0;
}

/* A GPTQ linear of an HF GPTQ checkpoint (NAME.qweight, .qzeros, .scales, .g_idx), dequantized
 * to float (owned) by formats/gptq_hf.c. 1 if there is none. */
static int get_gptq_matrix(sm_model *m, const char *name, int64_t rows, int64_t cols, sm_weight *w) {
    char n[4][128];
    const char *const SUF[4] = {"qweight", "qzeros", "scales", "g_idx"};
    const sm_tensor *t[4];
    for (int i = 0; i < 4; i++) {
        snprintf(n[i], sizeof n[i], "%s.%s", name, SUF[i]);
        t[i] = find(m, n[i]);
    }
    if (!t[0]) return 1;
    if (!t[1] || !t[2]) return sm_error("%s: GPTQ weight %s lacks %s", source(m), name, t[1] ? "scales" : "qzeros");
    int64_t out_f, in_f;
    if (sm_gptq_hf_dequantize(&m->gptq_cfg, t[0], t[1], t[2], t[3], NULL, &out_f, &in_f))
        return sm_error_ctx("%s", source(m));
    if (out_f != rows || in_f != cols)
        return sm_error("%s: GPTQ weight %s is [%lld, %lld], expected [%lld, %lld]", source(m), name, (long long)out_f,
                        (long long)in_f, (long long)rows, (long long)cols);
    float *v = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!v) return sm_error("out of memory");
    if (own(m, v)) return -1;
    if (sm_gptq_hf_dequantize(&m->gptq_cfg, t[0], t[1], t[2], t[3], v, &out_f, &in_f))
        return sm_error_ctx("%s", source(m));
    *w = (sm_weight){SM_TYPE_F32, v, sizeof(float) * (size_t)cols, rows, cols};
    return 0;
}

/* A matrix [rows, cols] the kernels can multiply with. */
static int get_matrix(sm_model *m, const char *name, int64_t rows, int64_t cols, sm_weight *w) {
    const sm_tensor *t = find(m, name);
    if (!t && m->gptq) {
        const int rc = get_gptq_matrix(m, name, rows, cols, w);
        if (rc <= 0) return rc;
    }
    if (!t) return sm_error("%s: tensor %s is missing", source(m), name);
    char want[96];
    snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) return shape_error(m, t, name, want);
    if (!sm_matmul_supported(t->type, cols))
        return sm_error("%s: tensor %s: the runtime cannot multiply with %s weights", source(m), name,
                        sm_type_name(t->type));
    size_t stride = (size_t)sm_type_row_bytes(t->type, cols);
    if (!t->data || t->nbytes < stride * (uint64_t)rows)
        return sm_error("%s: tensor %s: %llu bytes of data, expected %llu", source(m), name,
                        (unsigned long long)t->nbytes, (unsigned long long)(stride * (uint64_t)rows));
    *w = (sm_weight){t->type, t->data, stride, rows, cols};
    return 0;
}

static void release(const sm_model *m, const sm_weight *w) {
    const uint64_t n = (uint64_t)w->stride * (uint64_t)w->rows;
    if (m->gguf) sm_gguf_release(m->gguf, w->data, n);
    if (m->ckpt) sm_ckpt_release(m->ckpt, w->data, n); /* owned float copies lie outside: untouched */
}

/* The experts of layer l's stack t (SM_FEAT_MOE), n_expert matrices [rows, cols] into the model's
 * expert_w: views of the GGUF's [n_expert, rows, cols] tensor, or the HF experts' own tensors (named
 * "blk.L.<stack>.weight/E" by map_hf). */
static int get_stack(sm_model *m, int64_t l, const sm_block_tensor *t, sm_weight **out) {
    const sm_hparams *hp = &m->hp;
    const int64_t NE = hp->n_expert, rows = sm_dim_size(hp, t->rows), cols = sm_dim_size(hp, t->cols);
    if (!m->expert_w && !(m->expert_w = calloc((size_t)(hp->n_layer * 3 * NE), sizeof *m->expert_w)))
        return sm_error("out of memory");
    const int k = !strcmp(t->gguf, "ffn_gate_exps") ? 0 : !strcmp(t->gguf, "ffn_up_exps") ? 1 : 2;
    sm_weight *w = m->expert_w + (l * 3 + k) * NE;
    *out = w;
    char n[128];
    snprintf(n, sizeof n, "blk.%lld.%s.weight", (long long)l, t->gguf);
    if (!m->gguf) {
        for (int64_t e = 0; e < NE; e++) {
            char ne[160];
            snprintf(ne, sizeof ne, "%s/%lld", n, (long long)e);
            if (get_matrix(m, ne, rows, cols, &w[e])) return -1;
        }
        return 0;
    }
    const sm_tensor *g = find(m, n);
    if (!g) return sm_error("%s: tensor %s is missing", source(m), n);
    char want[96];
    snprintf(want, sizeof want, "[%lld, %lld, %lld]", (long long)NE, (long long)rows, (long long)cols);
    if (g->n_dims != 3 || g->shape[0] != NE || g->shape[1] != rows || g->shape[2] != cols) return shape_error(m, g, n, want);
    if (!sm_matmul_supported(g->type, cols))
        return sm_error("%s: tensor %s: the runtime cannot multiply with %s weights", source(m), n, sm_type_name(g->type));
    const size_t stride = (size_t)sm_type_row_bytes(g->type, cols);
    if (!g->data || g->nbytes < stride * (uint64_t)rows * (uint64_t)NE)
        return sm_error("%s: tensor %s: %llu bytes of data, expected %llu", source(m), n, (unsigned long long)g->nbytes,
                        (unsigned long long)(stride * (uint64_t)rows * (uint64_t)NE));
    for (int64_t e = 0; e < NE; e++)
        w[e] = (sm_weight){g->type, (const char *)g->data + stride * (size_t)(rows * e), stride, rows, cols};
    return 0;
}

/* A vector of n floats (copied); *out = NULL if absent and optional. */
static int get_vector(sm_model *m, const char *name, int64_t n, bool optional, float **out) {
    *out = NULL;
    const sm_tensor *t = find(m, name);
    if (!t) return optional ? 0 : sm_error("%s: tensor %s is missing", source(m), name);
    char want[64];
    snprintf(want, sizeof want, "[%lld]", (long long)n);
    if (sm_tensor_nelements(t) != n || t->shape[t->n_dims - 1] != n) return shape_error(m, t, name, want);
    if (!t->data || t->nbytes < sm_type_row_bytes(t->type, n) || sm_type_row_bytes(t->type, n) == 0)
        return sm_error("%s: tensor %s: too few bytes of data", source(m), name);
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v) return sm_error("out of memory");
    if (own(m, v)) return -1;
    int rc = sm_plain_to_f32(t->type, t->data, v, n);
    if (rc) {
        sm_clear_error();
        rc = sm_row_to_f32(t->type, t->data, v, n);
    }
    /* an HF checkpoint of an architecture whose RMSNorm multiplies by (1 + w): the + 1 the converter
     * stores in the GGUF (model.h SM_FEAT_NORM_SHIFT) */
    const size_t nl = strlen(name);
    if (!rc && m->ckpt && (m->hp.features & SM_FEAT_NORM_SHIFT) && nl > 11 && !strcmp(name + nl - 11, "norm.weight"))
        rc = sm_norm_shift_to_f32(t->type, t->data, v, n);
    if (rc) return sm_error_ctx("%s: tensor %s", source(m), name);
    *out = v;
    /* copied: its pages, and those the kernel's fault-around mapped with them (64 KiB), need
     * not stay resident (layer-at-a-time work would otherwise hold them for every block) */
    const uintptr_t at = (uintptr_t)t->data, around = (uintptr_t)64 << 10;
    const sm_weight span = {t->type, (const void *)(at > around ? at - around : 0), (size_t)(t->nbytes + 2 * around), 1, n};
    release(m, &span);
    return 0;
}

/* ---- hyperparameters ---- */

static int check_hparams(sm_model *m) {
    sm_hparams *hp = &m->hp;
    if (!sm_arch_by_gguf(hp->arch))
        return sm_error("%s: architecture '%s' is not supported by the runtime (%s)", source(m), hp->arch,
                        sm_supported_gguf_archs());
    if (hp->head_dim <= 0 && hp->n_head > 0) hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_vocab <= 0 || hp->n_vocab > (1 << 24) || hp->n_embd <= 0 || hp->n_embd > MAX_DIM || hp->n_ff <= 0 ||
        hp->n_ff > MAX_DIM || hp->n_layer <= 0 || hp->n_layer > MAX_LAYERS || hp->n_head <= 0 ||
        hp->n_head > 4096 || hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->head_dim <= 0 ||
        hp->head_dim % 2 || hp->head_dim * hp->n_head > MAX_DIM)
        return sm_error("%s: implausible hyperparameters (vocab %lld, embd %lld, ff %lld, layers %lld, heads %lld/%lld, "
                        "head_dim %lld)",
                        source(m), (long long)hp->n_vocab, (long long)hp->n_embd, (long long)hp->n_ff,
                        (long long)hp->n_layer, (long long)hp->n_head, (long long)hp->n_head_kv,
                        (long long)hp->head_dim);
    if (hp->features & ~(unsigned)SM_FEAT_CPU)
        return sm_error("%s: the %s block (features 0x%x) is not implemented by the runtime", source(m), hp->arch,
                        hp->features & ~(unsigned)SM_FEAT_CPU);
    if (!(hp->rms_eps > 0) || !(hp->rope_theta > 0))
        return sm_error("%s: rms_eps and rope_theta must be positive", source(m));
    if ((hp->features & SM_FEAT_MOE) && (hp->n_expert <= 0 || hp->n_expert > 512 || hp->n_expert_used <= 0 ||
                                         hp->n_expert_used > hp->n_expert || hp->n_ff_exp <= 0 || hp->n_ff_exp > MAX_DIM))
        return sm_error("%s: implausible mixture of experts (%lld experts, %lld used, expert FFN %lld)", source(m),
                        (long long)hp->n_expert, (long long)hp->n_expert_used, (long long)hp->n_ff_exp);
    m->head_dim = hp->head_dim;
    m->n_rot = hp->n_rot ? hp->n_rot : hp->head_dim;
    if (m->n_rot <= 0 || m->n_rot > m->head_dim || m->n_rot % 2)
        return sm_error("%s: %lld rotated dimensions per head: expected an even number up to the head size %lld",
                        source(m), (long long)m->n_rot, (long long)m->head_dim);
    m->q_dim = hp->n_head * hp->head_dim;
    m->kv_dim = hp->n_head_kv * hp->head_dim;
    return 0;
}

/* Rotation speed of each pair: theta^(-2i/d), divided by the scaling llama.cpp applies. */
static int rope_setup(sm_model *m) {
    const sm_hparams *hp = &m->hp;
    const int64_t half = m->n_rot / 2;
    m->rope_freq = malloc(sizeof(double) * (size_t)half);
    if (!m->rope_freq) return sm_error("out of memory");
    for (int64_t i = 0; i < half; i++) m->rope_freq[i] = pow((double)hp->rope_theta, -2.0 * (double)i / (double)m->n_rot);
    if ((hp->features & SM_FEAT_SWA_ROPE) && hp->rope_theta_swa > 0) { /* llama.cpp: freq_scale_swa 1 */
        m->rope_freq_swa = malloc(sizeof(double) * (size_t)half);
        if (!m->rope_freq_swa) return sm_error("out of memory");
        for (int64_t i = 0; i < half; i++)
            m->rope_freq_swa[i] = pow((double)hp->rope_theta_swa, -2.0 * (double)i / (double)m->n_rot);
    }
    const char *type = hp->rope_scaling_type;
    if (!strcmp(type, "longrope")) { /* model/longrope.c: short and long divisors */
        if (m->gguf && (get_vector(m, "rope_factors_long.weight", half, false, &m->longrope_f[0]) ||
                        get_vector(m, "rope_factors_short.weight", half, false, &m->longrope_f[1])))
            return -1;
        if (!m->longrope_f[0] || !m->longrope_f[1]) return sm_error("%s: longrope factors missing", source(m));
        m->rope_freq_long = malloc(sizeof(double) * (size_t)half);
        if (!m->rope_freq_long) return sm_error("out of memory");
        for (int64_t i = 0; i < half; i++) {
            const float fl = m->longrope_f[0][i], fs = m->longrope_f[1][i];
            if (!(fl > 0) || !(fs > 0) || !isfinite(fl) || !isfinite(fs))
                return sm_error("%s: rope factor %lld is not a positive number", source(m), (long long)i);
            m->rope_freq_long[i] = m->rope_freq[i] / fl;
            m->rope_freq[i] /= fs;
        }
        return 0;
    }
    const sm_tensor *rf = find(m, "rope_freqs.weight");
    if (rf) { /* GGUF llama3-style per-pair divisors */
        float *f;
        if (get_vector(m, "rope_freqs.weight", half, false, &f)) return -1;
        for (int64_t i = 0; i < half; i++) {
            if (!(f[i] > 0)) return sm_error("%s: rope_freqs.weight[%lld] is not positive", source(m), (long long)i);
            m->rope_freq[i] /= f[i];
        }
    } else if (!strcmp(type, "llama3")) { /* HF checkpoint: the factors the converter would store */
        float *f = malloc(sizeof(float) * (size_t)half);
        if (!f || sm_rope_llama3_factors(hp, f, half)) {
            free(f);
            return f ? -1 : sm_error("out of memory");
        }
        for (int64_t i = 0; i < half; i++) m->rope_freq[i] /= f[i];
        free(f);
    }
    if (!strcmp(type, "linear")) {
        if (!(hp->rope_scaling_factor > 0)) return sm_error("%s: linear rope scaling needs a positive factor", source(m));
        for (int64_t i = 0; i < half; i++) m->rope_freq[i] /= hp->rope_scaling_factor;
    } else if (type[0] && strcmp(type, "none") && strcmp(type, "llama3")) {
        return sm_error("%s: rope scaling '%s' is not supported by the runtime", source(m), type);
    }
    return 0;
}

/* ---- the tensors ---- */

static int load_tensors(sm_model *m) {
    const sm_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    if (get_matrix(m, "token_embd.weight", hp->n_vocab, E, &m->tok_embd)) return -1;
    /* every token id the tokenizer can produce needs an embedding row; a GGUF's own token
     * list must match the rows exactly (llama.cpp sizes token_embd by the token count) */
    if (m->has_vocab && (m->vocab.n_tokens > hp->n_vocab || (m->gguf && !m->vocab_external && m->vocab.n_tokens != hp->n_vocab)))
        return sm_error("%s: the vocabulary has %lld tokens but token_embd.weight has %lld rows", source(m),
                        (long long)m->vocab.n_tokens, (long long)hp->n_vocab);
    if (get_vector(m, "output_norm.weight", E, false, &m->output_norm)) return -1;
    if (find(m, "output.weight")) {
        if (get_matrix(m, "output.weight", hp->n_vocab, E, &m->output)) return -1;
    } else {
        m->output = m->tok_embd; /* tied */
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sm_error("out of memory");
    for (int64_t l = 0; l < hp->n_layer; l++) {
        sm_layer_weights *L = &m->layers[l];
        /* every block tensor of the table: matrices and the norms of the architecture are
         * required, biases are taken where present */
        for (size_t i = 0; i < SM_N_BLOCK_TENSORS; i++) {
            const sm_block_tensor *t = &SM_BLOCK_TENSORS[i];
            if (!t->bias && !sm_block_tensor_present(hp, t)) continue;
            char n[96];
            snprintf(n, sizeof n, "blk.%lld.%s%s", (long long)l, t->gguf, t->bias ? ".bias" : ".weight");
            const int64_t rows = sm_dim_size(hp, t->rows);
            if (sm_block_tensor_is_stack(t)) {
                if (get_stack(m, l, t, (sm_weight **)(void *)((char *)L + t->off))) return -1;
            } else if (t->cols == SM_DIM_NONE) {
                if (get_vector(m, n, rows, t->bias, (float **)((char *)L + t->off))) return -1;
            } else if (get_matrix(m, n, rows, sm_dim_size(hp, t->cols), (sm_weight *)((char *)L + t->off))) {
                return -1;
            }
        }
        if (hp->features & SM_FEAT_FUSED) { /* row views: q, k, v of attn_qkv; gate then up of ffn_up */
            const sm_weight *f = &L->wqkv;
            const int64_t q = m->q_dim, kv = m->kv_dim;
            L->wq = (sm_weight){f->type, f->data, f->stride, q, f->cols};
            L->wk = (sm_weight){f->type, (const char *)f->data + f->stride * (size_t)q, f->stride, kv, f->cols};
            L->wv = (sm_weight){f->type, (const char *)f->data + f->stride * (size_t)(q + kv), f->stride, kv, f->cols};
            f = &L->gate_up;
            L->gate = (sm_weight){f->type, f->data, f->stride, hp->n_ff, f->cols};
            L->up = (sm_weight){f->type, (const char *)f->data + f->stride * (size_t)hp->n_ff, f->stride, hp->n_ff, f->cols};
        }
    }
    return 0;
}

/* ---- the three sources ---- */

static int open_gguf(sm_model *m, const char *path) {
    if (sm_gguf_open(path, &m->gguf)) return -1;
    if (sm_hparams_from_gguf(m->gguf, &m->hp)) return -1;
    const sm_arch_info *ai = sm_arch_by_gguf(m->hp.arch);
    m->rope = ai ? ai->gguf_rope : SM_ROPE_NORM; /* unknown: check_hparams refuses it */
    if (sm_gguf_find(m->gguf, "tokenizer.ggml.model")) {
        if (sm_vocab_from_gguf(m->gguf, &m->vocab)) return -1;
        m->has_vocab = true;
    }
    return 0;
}

/* The GGUF name of an HF tensor; GPTQ parts get the weight's name + ".qweight" etc. */
static int map_hf(const sm_model *m, const char *hf, char *out, size_t cap) {
    int flags = 0;
    if (m->gptq) {
        const char *const SUF[4] = {".qweight", ".qzeros", ".scales", ".g_idx"};
        const size_t len = strlen(hf);
        for (int i = 0; i < 4; i++) {
            const size_t sl = strlen(SUF[i]);
            if (len <= sl || strcmp(hf + len - sl, SUF[i]) || len - sl + 8 > 200) continue;
            char w[208];
            snprintf(w, sizeof w, "%.*s.weight", (int)(len - sl), hf);
            const int r = sm_map_hf_name(&m->hp, w, out, cap, &flags);
            if (r <= 0) return r;
            if (strlen(out) + sl >= cap) return sm_error("tensor name %s is too long", hf);
            strcat(out, SUF[i]);
            return 1;
        }
    }
    const int r = sm_map_hf_name(&m->hp, hf, out, cap, &flags);
    if (r == 1 && (flags & SM_MAP_EXPERT)) { /* one expert of a stack: get_stack finds it as NAME/E */
        const size_t len = strlen(out);
        if (snprintf(out + len, cap - len, "/%d", flags >> SM_MAP_EXPERT_SHIFT) >= (int)(cap - len))
            return sm_error("tensor name %s is too long", hf);
    }
    return r;
}

static int open_hf(sm_model *m, const char *dir) {
    char *cfg = sm_path_join(dir, "config.json");
    if (!cfg) return sm_error("out of memory");
    int rc = sm_hparams_from_hf_config(cfg, &m->hp);
    free(cfg);
    if (rc) return -1;
    rc = sm_gptq_hf_config_load(dir, &m->gptq_cfg);
    if (rc < 0) return -1;
    m->gptq = rc == 0;
    if (sm_ckpt_open(dir, &m->ckpt)) return -1;
    m->ckpt_names = calloc(m->ckpt->n_tensors ? m->ckpt->n_tensors : 1, sizeof *m->ckpt_names);
    if (!m->ckpt_names) return sm_error("out of memory");
    for (size_t i = 0; i < m->ckpt->n_tensors; i++) {
        int r = map_hf(m, m->ckpt->tensors[i].name, m->ckpt_names[i], sizeof m->ckpt_names[i]);
        if (r < 0) return -1;
        if (r == 0) m->ckpt_names[i][0] = 0;
    }
    /* HF keeps q/k in rotate_half order (the GGUF converter permutes them; we do not) */
    m->rope = SM_ROPE_NEOX;
    if (!strcmp(m->hp.rope_scaling_type, "longrope")) { /* the factors the converter would store */
        const int64_t half = (m->hp.n_rot ? m->hp.n_rot : m->hp.head_dim) / 2;
        for (int i = 0; i < 2; i++)
            if (!(m->longrope_f[i] = malloc(sizeof(float) * (size_t)half)) || own(m, m->longrope_f[i]))
                return sm_error("out of memory");
        cfg = sm_path_join(dir, "config.json");
        rc = cfg ? sm_rope_longrope_factors(cfg, &m->hp, m->longrope_f[0], m->longrope_f[1]) : sm_error("out of memory");
        free(cfg);
        if (rc) return -1;
    }
    if (sm_vocab_load_hf(dir, &m->vocab) == 0) {
        m->has_vocab = true;
        sm_vocab_apply_arch(&m->hp, &m->vocab);
    }
    else { /* a model without tokenizer files still evaluates token ids; a broken one says why */
        static const char *const TOK_FILES[] = {"tokenizer.json", "tokenizer.model"};
        for (int i = 0; i < 2 && !m->tok_error[0]; i++) {
            char *p = sm_path_join(dir, TOK_FILES[i]);
            if (p && sm_is_file(p)) snprintf(m->tok_error, sizeof m->tok_error, "%s", sm_last_error());
            free(p);
        }
        sm_clear_error();
    }
    return 0;
}

static int open_llama2c(sm_model *m, const char *path) {
    sm_llama2c_config cfg;
    if (sm_llama2c_open(path, &m->ckpt, &cfg) || sm_hparams_from_llama2c(&cfg, &m->hp)) return -1;
    m->rope = SM_ROPE_NORM; /* llama2.c exports q/k in Meta's interleaved order */
    return 0;
}

int sm_model_load(const char *path, const char *vocab_path, sm_model **out) {
    *out = NULL;
    sm_model *m = calloc(1, sizeof *m);
    if (!m) return sm_error("out of memory");
    int rc;
    bool llama2c = false;
    sm_file_kind kind;
    if (sm_sniff_expect(path, SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_LLAMA2C),
                        "a model: a GGUF file, a Hugging Face model directory or a llama2.c checkpoint", &kind))
        rc = -1;
    else if (kind == SM_FILE_HF_DIR) rc = open_hf(m, path);
    else if (kind == SM_FILE_GGUF) rc = open_gguf(m, path);
    else {
        rc = open_llama2c(m, path);
        llama2c = true;
    }
    if (rc == 0 && (vocab_path || llama2c)) {
        char *guess = NULL;
        if (!vocab_path) { /* tokenizer.model beside the checkpoint */
            const char *slash = strrchr(path, '/');
            size_t dl = slash ? (size_t)(slash - path) : 1;
            guess = malloc(dl + 20);
            if (guess) snprintf(guess, dl + 20, "%.*s/tokenizer.model", (int)dl, slash ? path : ".");
        }
        const char *vp = vocab_path ? vocab_path : guess;
        if (vp && (vocab_path || sm_is_file(vp))) {
            if (m->has_vocab) sm_vocab_free(&m->vocab);
            m->has_vocab = false;
            rc = sm_vocab_load_spm(vp, &m->vocab);
            m->has_vocab = rc == 0;
            m->vocab_external = true;
        }
        free(guess);
    }
    if (rc == 0 && m->has_vocab && sm_tokenizer_new(&m->vocab, &m->tok)) {
        snprintf(m->tok_error, sizeof m->tok_error, "%s", sm_last_error());
        sm_clear_error(); /* token ids can still be evaluated */
    }
    if (rc == 0) rc = check_hparams(m);
    if (rc == 0) rc = load_tensors(m);
    if (rc == 0) rc = rope_setup(m);
    if (rc) {
        sm_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void sm_model_release_layer(const sm_model *m, int64_t layer) {
    if (layer < 0) {
        release(m, &m->tok_embd);
        release(m, &m->output);
        return;
    }
    if (layer >= m->hp.n_layer || !m->layers) return;
    sm_layer_weights *L = &m->layers[layer];
    if (m->qk_perm) { /* the permuted copies go; the stored rows' pages are handed back */
        sm_weight *const qk[2] = {&L->wq, &L->wk};
        for (int k = 0; k < 2; k++) {
            release(m, &m->qk_src[2 * layer + k]);
            free(m->qk_perm[2 * layer + k]);
            m->qk_perm[2 * layer + k] = NULL;
            qk[k]->data = NULL;
        }
    }
    const sm_weight *const w[SM_LIN_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    for (int i = 0; i < SM_LIN_COUNT; i++)
        if (w[i]->data) release(m, w[i]);
    if (L->gate_inp.data) release(m, &L->gate_inp);
    const sm_weight *const ex[3] = {L->gate_exps, L->up_exps, L->down_exps};
    for (int k = 0; k < 3; k++)
        for (int64_t e = 0; ex[k] && e < m->hp.n_expert; e++) release(m, &ex[k][e]);
}

/* Row r of llama.cpp's q/k order comes from this row of HF's rotate_half order (convert's rule). */
static int64_t gguf_source_row(int64_t r, int64_t n, int64_t heads) {
    const int64_t d = n / heads, h = r / d, k = r % d;
    return h * d + (k & 1) * (d / 2) + k / 2;
}

static int permute_vector(float *v, int64_t n, int64_t heads) {
    if (!v) return 0;
    float *t = malloc(sizeof(float) * (size_t)n);
    if (!t) return sm_error("out of memory");
    for (int64_t r = 0; r < n; r++) t[r] = v[gguf_source_row(r, n, heads)];
    memcpy(v, t, sizeof(float) * (size_t)n);
    free(t);
    return 0;
}

int sm_model_gguf_layout(sm_model *m) {
    if (m->gguf || !m->ckpt_names || !m->hp.rope_hf_layout || m->rope != SM_ROPE_NEOX || m->qk_src) return 0;
    const int64_t n_layer = m->hp.n_layer;
    m->qk_src = calloc((size_t)(2 * n_layer), sizeof *m->qk_src);
    m->qk_perm = calloc((size_t)(2 * n_layer), sizeof *m->qk_perm);
    if (!m->qk_src || !m->qk_perm) return sm_error("out of memory");
    for (int64_t l = 0; l < n_layer; l++) {
        sm_layer_weights *L = &m->layers[l];
        if (permute_vector(L->bq, m->q_dim, m->hp.n_head) || permute_vector(L->bk, m->kv_dim, m->hp.n_head_kv))
            return -1;
        m->qk_src[2 * l] = L->wq;
        m->qk_src[2 * l + 1] = L->wk;
        L->wq.data = NULL; /* until sm_model_prepare_layer */
        L->wk.data = NULL;
    }
    m->rope = SM_ROPE_NORM;
    return 0;
}

int sm_model_prepare_layer(const sm_model *m, int64_t layer) {
    if (!m->qk_perm) return 0;
    if (layer < 0 || layer >= m->hp.n_layer) return sm_error("layer %lld out of range", (long long)layer);
    sm_layer_weights *L = &m->layers[layer];
    sm_weight *const qk[2] = {&L->wq, &L->wk};
    const int64_t heads[2] = {m->hp.n_head, m->hp.n_head_kv};
    for (int k = 0; k < 2; k++) {
        if (m->qk_perm[2 * layer + k]) continue;
        const sm_weight *w = &m->qk_src[2 * layer + k];
        uint8_t *p = malloc(w->stride * (size_t)w->rows);
        if (!p) return sm_error("out of memory");
        for (int64_t r = 0; r < w->rows; r++)
            memcpy(p + (size_t)r * w->stride, (const uint8_t *)w->data + (size_t)gguf_source_row(r, w->rows, heads[k]) * w->stride,
                   w->stride);
        m->qk_perm[2 * layer + k] = p;
        qk[k]->data = p;
    }
    return 0;
}

void sm_model_free(sm_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->rope_freq);
    free(m->rope_freq_swa);
    free(m->rope_freq_long);
    free(m->ckpt_names);
    if (m->qk_perm)
        for (int64_t i = 0; i < 2 * m->hp.n_layer; i++) free(m->qk_perm[i]);
    free(m->qk_perm);
    free(m->qk_src);
    free(m->expert_w);
    sm_tokenizer_free(m->tok);
    if (m->has_vocab) sm_vocab_free(&m->vocab);
    if (m->gguf) sm_gguf_close(m->gguf);
    if (m->ckpt) sm_ckpt_close(m->ckpt);
    free(m);
}

const sm_hparams *sm_model_hparams(const sm_model *m) { return &m->hp; }
const sm_vocab *sm_model_vocab(const sm_model *m) { return m->has_vocab ? &m->vocab : NULL; }
sm_rope_kind sm_model_rope(const sm_model *m) { return m->rope; }

int sm_model_tokenizer(const sm_model *m, const sm_tokenizer **out) {
    *out = m->tok;
    if (m->tok) return 0;
    if (m->has_vocab) return sm_error("%s: cannot tokenize with this vocabulary: %s", source(m), m->tok_error);
    if (m->tok_error[0]) return sm_error("%s: cannot load the tokenizer: %s", source(m), m->tok_error);
    return sm_error("%s: the model has no tokenizer (give one with --vocab FILE)", source(m));
}

uint64_t sm_model_weight_bytes(const sm_model *m) {
    uint64_t b = (uint64_t)m->output.stride * (uint64_t)m->output.rows;
    for (int64_t l = 0; l < m->hp.n_layer; l++) {
        const sm_layer_weights *L = &m->layers[l];
        const sm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < 7; i++) b += (uint64_t)ws[i]->stride * (uint64_t)ws[i]->rows;
        /* a mixture of experts reads its router and n_expert_used experts per token */
        const sm_weight *ex[] = {L->gate_exps, L->up_exps, L->down_exps};
        for (size_t i = 0; i < 3 && ex[i]; i++) b += (uint64_t)ex[i]->stride * (uint64_t)ex[i]->rows * (uint64_t)m->hp.n_expert_used;
        b += (uint64_t)L->gate_inp.stride * (uint64_t)L->gate_inp.rows;
    }
    return b;
}

/* forward.c - evaluation contexts (KV cache, scratch) and the decoder forward pass:
 * embedding, then per layer RMSNorm -> q/k/v (+bias) (-> per-head q/k RMSNorm) -> RoPE -> attention -> output
 * projection + residual -> RMSNorm -> SiLU-gated FFN + residual, then the final norm and
 * the logits. Tokens are processed in batches with feature-major activations, so every
 * projection is one matrix product that reads and writes the batch buffers in place.
 * Element-wise work never mixes tokens, so results do not depend on the thread count. */
#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTX (1 << 24)
/* element-wise loops smaller than this (in elements) run on one thread */
#define PAR_MIN (1 << 16)

/* ---- contexts ---- */

static void *xalloc(size_t n, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * size)) return NULL;
    return p;
}

void sm_rope_tables(const sm_model *m, int64_t n_ctx, float *cos_t, float *sin_t, float *cos_swa, float *sin_swa) {
    const sm_hparams *hp = &m->hp;
    const size_t half = (size_t)m->n_rot / 2;
    /* angles in double, so a late position is as exact as an early one. longrope (model/longrope.c):
     * the long factors for a context beyond the original one, as llama.cpp chooses them, and cos,
     * sin times the attention factor */
    const double *freq = m->rope_freq_long && n_ctx > hp->rope_scaling_orig_ctx ? m->rope_freq_long : m->rope_freq;
    const float mscale = hp->rope_attn_factor > 0 ? hp->rope_attn_factor : 1.0f;
    for (size_t i = 0; i < half; i++)
        for (int64_t p = 0; p < n_ctx; p++) {
            const double a = (double)p * freq[i];
            cos_t[i * (size_t)n_ctx + (size_t)p] = (float)cos(a) * mscale;
            sin_t[i * (size_t)n_ctx + (size_t)p] = (float)sin(a) * mscale;
            if (!m->rope_freq_swa) continue;
            const double b = (double)p * m->rope_freq_swa[i];
            cos_swa[i * (size_t)n_ctx + (size_t)p] = (float)cos(b);
            sin_swa[i * (size_t)n_ctx + (size_t)p] = (float)sin(b);
        }
}

int sm_context_check_window(const sm_model *m, int64_t n_ctx) {
    /* a window on every layer (swa_pattern 0: Phi-3 in transformers) is applied by no backend
     * (llama.cpp switches Phi-3's off), so a longer context is refused rather than evaluated
     * differently */
    if ((m->hp.features & SM_FEAT_SWA) && m->hp.swa_pattern == 0 && m->hp.sliding_window > 0 &&
        n_ctx > m->hp.sliding_window)
        return sm_error("context size %lld exceeds the model's sliding attention window (%lld): windowed attention "
                        "is not implemented; use --ctx %lld or less",
                        (long long)n_ctx, (long long)m->hp.sliding_window, (long long)m->hp.sliding_window);
    return 0;
}

static int context_new(const sm_model *m, int64_t n_ctx, int64_t n_batch, int64_t kv_layers, sm_context **out) {
    *out = NULL;
    if (n_ctx <= 0 || n_ctx > MAX_CTX) return sm_error("context size %lld is out of range", (long long)n_ctx);
    if (sm_context_check_window(m, n_ctx)) return -1;
    if (n_batch <= 0 || n_batch > n_ctx) n_batch = n_ctx;
    sm_context *c = calloc(1, sizeof *c);
    if (!c) return sm_error("out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->ld = (n_batch + 15) & ~(int64_t)15;
    c->kv_layers = kv_layers;
    const sm_hparams *hp = &m->hp;
    const size_t cache = (size_t)kv_layers * (size_t)m->kv_dim * (size_t)n_ctx;
    const size_t half = (size_t)m->n_rot / 2, ld = (size_t)c->ld;
    const size_t logit_rows = hp->n_vocab < SM_LOGIT_ROWS ? (size_t)hp->n_vocab : SM_LOGIT_ROWS;
    c->k_cache = xalloc(cache, sizeof(float));
    c->v_cache = xalloc(cache, sizeof(float));
    c->rope_cos = xalloc((size_t)n_ctx * half, sizeof(float));
    c->rope_sin = xalloc((size_t)n_ctx * half, sizeof(float));
    if (m->rope_freq_swa) {
        c->rope_cos_swa = xalloc((size_t)n_ctx * half, sizeof(float));
        c->rope_sin_swa = xalloc((size_t)n_ctx * half, sizeof(float));
    }
    c->x = xalloc(ld * (size_t)hp->n_embd, sizeof(float));
    c->xn = xalloc(ld * (size_t)hp->n_embd, sizeof(float));
    c->tmp = xalloc((size_t)hp->n_embd, sizeof(float));
    c->q = xalloc(ld * (size_t)m->q_dim, sizeof(float));
    c->att = xalloc(ld * (size_t)m->q_dim, sizeof(float));
    c->k = xalloc(ld * (size_t)m->kv_dim, sizeof(float));
    c->v = xalloc(ld * (size_t)m->kv_dim, sizeof(float));
    const size_t ff = (size_t)(hp->n_ff_exp > hp->n_ff ? hp->n_ff_exp : hp->n_ff); /* a mixture's experts use them too */
    c->gate = xalloc(ld * ff, sizeof(float));
    c->up = xalloc(ld * ff, sizeof(float));
    c->logits_t = xalloc(ld * logit_rows, sizeof(float));
    c->ss = xalloc((size_t)n_batch, sizeof(double));
    if (!c->k_cache || !c->v_cache || !c->rope_cos || !c->rope_sin || !c->x || !c->xn || !c->tmp || !c->q ||
        !c->att || !c->k || !c->v || !c->gate || !c->up || !c->logits_t || !c->ss || sm_moe_context_alloc(c) ||
        (m->rope_freq_swa && (!c->rope_cos_swa || !c->rope_sin_swa))) {
        sm_context_free(c);
        return sm_error("out of memory for a context of %lld positions (KV cache %.1f MiB)", (long long)n_ctx,
                        2.0 * (double)cache * sizeof(float) / 1048576.0);
    }
    sm_rope_tables(m, n_ctx, c->rope_cos, c->rope_sin, c->rope_cos_swa, c->rope_sin_swa);
    sm_block_desc_build(m, &c->block);
    *out = c;
    return 0;
}

int sm_context_new(const sm_model *m, int64_t n_ctx, int64_t n_batch, sm_context **out) {
    return context_new(m, n_ctx, n_batch, m->hp.n_layer, out);
}

int sm_context_new_block(const sm_model *m, int64_t n_ctx, int64_t n_batch, sm_context **out) {
    return context_new(m, n_ctx, n_batch, 1, out);
}

int sm_context_new_on(const sm_model *m, sm_device device, int64_t n_ctx, int64_t n_batch, sm_context **out) {
    if (device == SM_DEVICE_CPU) return sm_context_new(m, n_ctx, n_batch, out);
    *out = NULL;
    if (n_ctx <= 0 || n_ctx > MAX_CTX) return sm_error("context size %lld is out of range", (long long)n_ctx);
    sm_context *c = calloc(1, sizeof *c);
    if (!c) return sm_error("out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch > 0 && n_batch < n_ctx ? n_batch : n_ctx;
    if (sm_cuda_net_for_model(m, n_ctx, &c->cuda)) {
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void sm_context_free(sm_context *c) {
    if (!c) return;
    sm_cuda_net_free(c->cuda);
    sm_moe_context_free(c);
    void *bufs[] = {c->k_cache, c->v_cache, c->rope_cos, c->rope_sin, c->rope_cos_swa, c->rope_sin_swa, c->x, c->xn, c->tmp, c->q,
                    c->att, c->k, c->v, c->gate, c->up, c->logits_t, c->ss};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c);
}

int64_t sm_context_n_ctx(const sm_context *c) { return c->n_ctx; }
void sm_context_clear(sm_context *c) { c->n_past = 0; }
void sm_context_set_int_dot(sm_context *c, bool on) { c->int_dot = on; }

/* ---- element-wise pieces (feature-major: row f, token t at a[f*ld + t]) ---- */

/* y = x / rms(x) * w for tokens [0, n) of x, written to tokens [0, n) of y. */
static void rms_norm(sm_context *c, const float *x, const float *w, float *y, int64_t n) {
    const int64_t E = c->m->hp.n_embd, ld = c->ld;
    double *ss = c->ss;
    for (int64_t t = 0; t < n; t++) ss[t] = 0;
    for (int64_t f = 0; f < E; f++)
        for (int64_t t = 0; t < n; t++) ss[t] += (double)x[f * ld + t] * x[f * ld + t];
    for (int64_t t = 0; t < n; t++) ss[t] = 1.0 / sqrt(ss[t] / (double)E + (double)c->m->hp.rms_eps);
#pragma omp parallel for schedule(static) if (E * n >= PAR_MIN)
    for (int64_t f = 0; f < E; f++)
        for (int64_t t = 0; t < n; t++) y[f * ld + t] = (x[f * ld + t] * (float)ss[t]) * w[f];
}

/* Per-head RMSNorm (SM_FEAT_QK_NORM): each head_dim slice of each token of v (n_heads heads)
 * divided by its rms and multiplied by w [head_dim], in place; sums in double in feature
 * order, as rms_norm does. */
static void head_norm(const sm_context *c, float *v, int64_t n_heads, const float *w, int64_t n) {
    const int64_t hd = c->m->head_dim, ld = c->ld;
    const double eps = (double)c->m->hp.rms_eps;
#pragma omp parallel for schedule(static) if (n_heads * hd * n >= PAR_MIN)
    for (int64_t h = 0; h < n_heads; h++) {
        float *vh = v + h * hd * ld;
        for (int64_t t = 0; t < n; t++) {
            double ss = 0;
            for (int64_t d = 0; d < hd; d++) ss += (double)vh[d * ld + t] * vh[d * ld + t];
            const float s = (float)(1.0 / sqrt(ss / (double)hd + eps));
            for (int64_t d = 0; d < hd; d++) vh[d * ld + t] = (vh[d * ld + t] * s) * w[d];
        }
    }
}

/* Rotate the batch's q and k heads (n tokens at positions pos0...) of layer l: the first n_rot
 * dimensions of each head, the rest passes through (partial rotary, as ggml's rope with n_dims <
 * head size). */
static void rope(const sm_context *c, float *q, float *k, int64_t n, int64_t pos0, int64_t l) {
    const bool local = c->rope_cos_swa && sm_swa_layer(&c->m->hp, l); /* Gemma 3's local rope base */
    const float *cos_t = local ? c->rope_cos_swa : c->rope_cos, *sin_t = local ? c->rope_sin_swa : c->rope_sin;
    const int64_t hd = c->m->head_dim, half = c->m->n_rot / 2, ld = c->ld, nq = c->m->hp.n_head * half;
    const int64_t pairs = (c->m->hp.n_head + c->m->hp.n_head_kv) * half;
#pragma omp parallel for schedule(static) if (pairs * 2 * n >= PAR_MIN)
    for (int64_t hi = 0; hi < pairs; hi++) {
        float *v = hi < nq ? q : k;
        const int64_t h = (hi < nq ? hi : hi - nq) / half, i = hi % half;
        const int64_t fa = h * hd + (c->m->rope == SM_ROPE_NORM ? 2 * i : i);
        const int64_t fb = fa + (c->m->rope == SM_ROPE_NORM ? 1 : half);
        float *a = v + fa * ld, *b = v + fb * ld;
        const float *cs = cos_t + i * c->n_ctx + pos0, *sn = sin_t + i * c->n_ctx + pos0;
        for (int64_t t = 0; t < n; t++) {
            const float xa = a[t], xb = b[t];
            a[t] = xa * cs[t] - xb * sn[t];
            b[t] = xa * sn[t] + xb * cs[t];
        }
    }
}

static void add_bias(const sm_context *c, float *v, const float *b, int64_t rows, int64_t n) {
    if (!b) return;
    for (int64_t f = 0; f < rows; f++)
        for (int64_t t = 0; t < n; t++) v[f * c->ld + t] += b[f];
}

/* x += y over rows [0, rows) of tokens [0, n) (feature-major, c->ld apart). */
static void add_rows(const sm_context *c, float *x, const float *y, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n >= PAR_MIN)
    for (int64_t f = 0; f < rows; f++)
        for (int64_t t = 0; t < n; t++) x[f * c->ld + t] += y[f * c->ld + t];
}

/* g = gelu_tanh(g) * u (SM_FEAT_GELU_TANH): transformers' gelu_pytorch_tanh,
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static void gelu_tanh_mul(float *g, const float *u, int64_t n) {
    const float k = 0.7978845608028654f;
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * u[i];
    }
}

/* y = W·X (or y += W·X) for each of up to 3 weights, one pass of the threads. */
static int matmuls(const sm_context *c, const float *x, int64_t n, int n_ops, const sm_weight *const *w,
                   float *const *y, bool accumulate) {
    sm_matmul_op ops[3];
    for (int i = 0; i < n_ops; i++)
        ops[i] = (sm_matmul_op){w[i]->type, w[i]->data, w[i]->stride, w[i]->rows, y[i], c->ld, accumulate, c->int_dot};
    return sm_matmul_many(ops, n_ops, w[0]->cols, x, c->ld, n);
}

/* ---- one batch ---- */

/* The observer, if any, on the input of a group of linears: 0 to go on, else what to return. */
static int observe(const sm_context *c, int64_t l, sm_linear_input which, const float *x, int64_t cols, int64_t n) {
    if (!c->obs) return 0;
    return c->obs(c->obs_user, l, which, x, c->ld, cols, n);
}

static float *buffer(const sm_context *c, int b) {
    float *const bufs[SM_BUF_COUNT] = {c->x, c->xn, c->q, c->k, c->v, c->att, c->gate, c->up};
    return bufs[b];
}

static const float *vector(const sm_layer_weights *L, int role) {
    const void *p = role == SM_ROLE_NONE ? NULL : sm_layer_role(L, role, NULL);
    return p ? *(float *const *)p : NULL;
}

/* K and V of the batch's n tokens into layer l's cache at positions pos0.. */
static void kv_store(sm_context *c, int64_t l, int64_t n, int64_t pos0) {
    const int64_t KV = c->m->kv_dim, hd = c->m->head_dim, ld = c->ld;
    float *kc = c->k_cache + (size_t)SM_KV_SLOT(c, l) * KV * c->n_ctx;
    float *vc = c->v_cache + (size_t)SM_KV_SLOT(c, l) * KV * c->n_ctx;
    for (int64_t h = 0; h < c->m->hp.n_head_kv; h++)
        for (int64_t d = 0; d < hd; d++) {
            const float *ks = c->k + (h * hd + d) * ld;
            float *kd = kc + ((size_t)h * c->n_ctx + (size_t)pos0) * hd + d;
            for (int64_t t = 0; t < n; t++) kd[t * hd] = ks[t];
            memcpy(vc + ((size_t)h * hd + (size_t)d) * c->n_ctx + pos0, c->v + (h * hd + d) * ld, sizeof(float) * (size_t)n);
        }
}

/* One decoder block over the batch in c->x, with the weights L (layer l's, or overrides): the
 * context's block description (model/block_desc.c) executed op by op. Every token's keys and
 * values go to the cache, but only tokens [from, n) are carried through attention and the FFN
 * (the last layer needs no more than the tokens whose logits are wanted; with an observer, from
 * is 0). */
static int block(sm_context *c, const sm_layer_weights *L, int64_t l, int64_t n, int64_t pos0, int64_t from) {
    const sm_block_desc *d = &c->block;
    const int64_t ld = c->ld;
    int64_t col = 0, k = n; /* the columns in play: [col, col + k) */
    int rc;
    for (int i = 0; i < d->n_ops; i++) {
        const sm_block_op *o = &d->ops[i];
        float *src = buffer(c, o->src) + col, *dst = buffer(c, o->dst[0]) + col;
        switch ((sm_block_opcode)o->op) {
        case SM_OP_NORM: rms_norm(c, src, vector(L, o->w[0]), dst, k); break;
        case SM_OP_OBSERVE:
            if ((rc = observe(c, l, (sm_linear_input)o->in, src, d->rows[o->src], k))) return rc;
            break;
        case SM_OP_LINEAR: {
            const sm_weight *w[3];
            float *y[3];
            for (int j = 0; j < o->n_out; j++) w[j] = sm_layer_role(L, o->w[j], NULL), y[j] = buffer(c, o->dst[j]) + col;
            if (matmuls(c, src, k, o->n_out, w, y, o->accumulate)) return -1;
            for (int j = 0; j < o->n_out; j++) add_bias(c, y[j], vector(L, o->b[j]), d->rows[o->dst[j]], k);
            break;
        }
        case SM_OP_HEAD_NORM: {
            const float *wq = vector(L, o->w[0]), *wk = vector(L, o->w[1]);
            if (wq) head_norm(c, buffer(c, o->dst[0]) + col, d->n_head, wq, k);
            if (wk) head_norm(c, buffer(c, o->dst[1]) + col, d->n_head_kv, wk, k);
            break;
        }
        case SM_OP_ROPE: rope(c, c->q + col, c->k + col, k, pos0 + col, l); break;
        case SM_OP_KV_STORE:
            kv_store(c, l, n, pos0);
            col = from, k = n - from;
            break;
        case SM_OP_ATTENTION:
            if (sm_attention(c, l, src, k, pos0 + col, dst)) return -1;
            break;
        case SM_OP_ADD: add_rows(c, dst, src, d->rows[o->dst[0]], k); break;
        case SM_OP_MOE:
            if ((rc = sm_moe_ffn(c, L, l, src, dst, k))) return rc;
            break;
        case SM_OP_GLU: {
            const int64_t F = d->rows[o->dst[0]];
            if (d->act == SM_ACT_GELU_TANH) {
#pragma omp parallel for schedule(static) if (F * k >= PAR_MIN)
                for (int64_t f = 0; f < F; f++) gelu_tanh_mul(dst + f * ld, src + f * ld, k);
            } else {
#pragma omp parallel for schedule(static) if (F * k >= PAR_MIN)
                for (int64_t f = 0; f < F; f++) sm_vec_silu_mul(dst + f * ld, src + f * ld, k);
            }
            break;
        }
        }
    }
    return 0;
}

int sm_layer_forward(sm_context *c, const sm_layer_weights *L, int64_t l, int64_t n, int64_t pos0) {
    return block(c, L, l, n, pos0, 0);
}

/* logits[t][v] for tokens [out_first, n) of the batch */
static int logits_out(sm_context *c, int64_t n, int64_t out_first, float *logits) {
    const sm_model *m = c->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab, n_out = n - out_first, ld = c->ld;
    /* normalise the wanted tokens into columns [0, n_out) */
    rms_norm(c, c->x + out_first, m->output_norm, c->xn, n_out);
    int rc = observe(c, -1, SM_IN_OUTPUT, c->xn, E, n_out);
    if (rc) return rc;
    const sm_weight *w = &m->output;
    for (int64_t v0 = 0; v0 < V; v0 += SM_LOGIT_ROWS) {
        const int64_t rows = V - v0 < SM_LOGIT_ROWS ? V - v0 : SM_LOGIT_ROWS;
        const sm_matmul_op op = {w->type, (const char *)w->data + (size_t)v0 * w->stride, w->stride, rows, c->logits_t,
                                 ld, false, c->int_dot};
        if (sm_matmul_many(&op, 1, E, c->xn, ld, n_out)) return -1;
#pragma omp parallel for schedule(static) if (rows * n_out >= PAR_MIN)
        for (int64_t t = 0; t < n_out; t++)
            for (int64_t r = 0; r < rows; r++) logits[t * V + v0 + r] = c->logits_t[r * ld + t];
    }
    if (c->block.final_softcap > 0) { /* cap * tanh(logit / cap) */
        const float cap = c->block.final_softcap;
        for (int64_t i = 0; i < n_out * V; i++) logits[i] = tanhf(logits[i] / cap) * cap;
    }
    return 0;
}

static int batch(sm_context *c, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first, float *logits) {
    const sm_model *m = c->m;
    const sm_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, ld = c->ld;
    for (int64_t t = 0; t < n; t++) {
        float *row = c->tmp; /* E floats of scratch */
        if (sm_row_to_f32(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.stride,
                          row, E))
            return -1;
        for (int64_t f = 0; f < E; f++) c->x[f * ld + t] = row[f];
        if (c->block.embd_scale > 0) { /* x * sqrt(n_embd) */
            const float sc = c->block.embd_scale;
            for (int64_t f = 0; f < E; f++) c->x[f * ld + t] *= sc;
        }
    }
    /* without an observer the last layer carries only the tokens whose logits are wanted */
    const int64_t last_from = c->obs || c->eobs ? 0 : !logits ? n : out_first < n ? out_first : n;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const int rc = block(c, &m->layers[l], l, n, pos0, l == hp->n_layer - 1 ? last_from : 0);
        if (rc) return rc;
    }
    if (!logits || out_first >= n) return 0;
    return logits_out(c, n, out_first, logits);
}

int sm_model_eval(const sm_model *m, sm_context *c, const int32_t *tokens, int64_t n, int64_t pos0,
                  int64_t out_first, float *logits) {
    if (c->m != m) return sm_error("evaluation context belongs to another model");
    if (m->qk_perm) return sm_error("a model in GGUF layout (sm_model_gguf_layout) evaluates one block at a time only");
    if (!c->cuda && c->kv_layers != m->hp.n_layer)
        return sm_error("a block context (one layer of KV cache) cannot evaluate the whole model");
    if (n < 0 || pos0 < 0 || pos0 > c->n_past || pos0 + n > c->n_ctx)
        return sm_error("cannot evaluate %lld tokens at position %lld: the context holds %lld of %lld positions",
                        (long long)n, (long long)pos0, (long long)c->n_past, (long long)c->n_ctx);
    if (out_first < 0) out_first = 0;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return sm_error("token id %d at index %lld is outside the vocabulary (%lld tokens)", tokens[i],
                            (long long)i, (long long)m->hp.n_vocab);
    c->n_past = pos0;
    if (c->cuda) {
        if (sm_cuda_net_eval(c->cuda, tokens, n, pos0, out_first, logits)) return -1;
        c->n_past = pos0 + n;
        return 0;
    }
    for (int64_t b0 = 0; b0 < n; b0 += c->n_batch) {
        const int64_t nb = n - b0 < c->n_batch ? n - b0 : c->n_batch;
        const int64_t first = out_first > b0 ? out_first - b0 : 0;
        float *out = logits && first < nb ? logits + (b0 + first - out_first) * m->hp.n_vocab : NULL;
        const int rc = batch(c, tokens + b0, nb, pos0 + b0, first, out);
        if (rc) return rc;
        c->n_past = pos0 + b0 + nb;
    }
    return 0;
}

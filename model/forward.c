/* forward.c - evaluation contexts (KV cache, scratch) and the decoder forward pass:
 * embedding, then per layer RMSNorm -> q/k/v (+bias) -> RoPE -> attention -> output
 * projection + residual -> RMSNorm -> SiLU-gated FFN + residual, then the final norm and
 * the logits. Tokens are processed in batches, so every projection is a matrix-matrix
 * product. Element-wise work is split over tokens, so results never depend on threads. */
#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTX (1 << 24)

/* ---- contexts ---- */

static float *falloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float))) return NULL;
    return p;
}

int sm_context_new(const sm_model *m, int64_t n_ctx, int64_t n_batch, sm_context **out) {
    *out = NULL;
    if (n_ctx <= 0 || n_ctx > MAX_CTX) return sm_error("context size %lld is out of range", (long long)n_ctx);
    if (n_batch <= 0 || n_batch > n_ctx) n_batch = n_ctx;
    sm_context *c = calloc(1, sizeof *c);
    if (!c) return sm_error("out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    const sm_hparams *hp = &m->hp;
    const size_t cache = (size_t)hp->n_layer * (size_t)m->kv_dim * (size_t)n_ctx;
    const size_t half = (size_t)m->head_dim / 2, nb = (size_t)n_batch;
    c->k_cache = falloc(cache);
    c->v_cache = falloc(cache);
    c->rope_cos = falloc((size_t)n_ctx * half);
    c->rope_sin = falloc((size_t)n_ctx * half);
    c->x = falloc(nb * (size_t)hp->n_embd);
    c->xn = falloc(nb * (size_t)hp->n_embd);
    c->tmp = falloc(nb * (size_t)hp->n_embd);
    c->q = falloc(nb * (size_t)m->q_dim);
    c->att = falloc(nb * (size_t)m->q_dim);
    c->k = falloc(nb * (size_t)m->kv_dim);
    c->v = falloc(nb * (size_t)m->kv_dim);
    c->gate = falloc(nb * (size_t)hp->n_ff);
    c->up = falloc(nb * (size_t)hp->n_ff);
    if (!c->k_cache || !c->v_cache || !c->rope_cos || !c->rope_sin || !c->x || !c->xn || !c->tmp || !c->q ||
        !c->att || !c->k || !c->v || !c->gate || !c->up) {
        sm_context_free(c);
        return sm_error("out of memory for a context of %lld positions (KV cache %.1f MiB)", (long long)n_ctx,
                        2.0 * (double)cache * sizeof(float) / 1048576.0);
    }
    /* angles in double, so position 100000 is as exact as position 1 */
    for (int64_t p = 0; p < n_ctx; p++)
        for (size_t i = 0; i < half; i++) {
            const double a = (double)p * m->rope_freq[i];
            c->rope_cos[(size_t)p * half + i] = (float)cos(a);
            c->rope_sin[(size_t)p * half + i] = (float)sin(a);
        }
    *out = c;
    return 0;
}

void sm_context_free(sm_context *c) {
    if (!c) return;
    float *bufs[] = {c->k_cache, c->v_cache, c->rope_cos, c->rope_sin, c->x, c->xn, c->tmp,
                     c->q, c->att, c->k, c->v, c->gate, c->up};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c);
}

int64_t sm_context_n_ctx(const sm_context *c) { return c->n_ctx; }
void sm_context_clear(sm_context *c) { c->n_past = 0; }

/* ---- element-wise pieces ---- */

static void rms_norm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float s = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * s) * w[i];
}

/* Rotate n_heads heads of one token at position pos. */
static void rope(const sm_context *c, float *v, int64_t n_heads, int64_t pos) {
    const int64_t hd = c->m->head_dim, half = hd / 2;
    const float *cs = c->rope_cos + pos * half, *sn = c->rope_sin + pos * half;
    for (int64_t h = 0; h < n_heads; h++) {
        float *x = v + h * hd;
        if (c->m->rope == SM_ROPE_NORM) {
            for (int64_t i = 0; i < half; i++) {
                const float a = x[2 * i], b = x[2 * i + 1];
                x[2 * i] = a * cs[i] - b * sn[i];
                x[2 * i + 1] = a * sn[i] + b * cs[i];
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                const float a = x[i], b = x[i + half];
                x[i] = a * cs[i] - b * sn[i];
                x[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

static int matmul(const sm_weight *w, const float *x, int64_t n, float *y) {
    return sm_matmul(w->type, w->data, w->stride, w->rows, w->cols, x, w->cols, n, y, w->rows);
}

/* ---- one batch ---- */

static int layer(sm_context *c, int64_t l, int64_t n, int64_t pos0) {
    const sm_model *m = c->m;
    const sm_hparams *hp = &m->hp;
    const sm_layer_weights *L = &m->layers[l];
    const int64_t E = hp->n_embd, Q = m->q_dim, KV = m->kv_dim, F = hp->n_ff, hd = m->head_dim;

#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) rms_norm(c->x + i * E, L->attn_norm, c->xn + i * E, E, hp->rms_eps);
    if (matmul(&L->wq, c->xn, n, c->q) || matmul(&L->wk, c->xn, n, c->k) || matmul(&L->wv, c->xn, n, c->v)) return -1;

    float *kc = c->k_cache + (size_t)l * KV * c->n_ctx, *vc = c->v_cache + (size_t)l * KV * c->n_ctx;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *q = c->q + i * Q, *k = c->k + i * KV, *v = c->v + i * KV;
        if (L->bq)
            for (int64_t j = 0; j < Q; j++) q[j] += L->bq[j];
        if (L->bk)
            for (int64_t j = 0; j < KV; j++) k[j] += L->bk[j];
        if (L->bv)
            for (int64_t j = 0; j < KV; j++) v[j] += L->bv[j];
        rope(c, q, hp->n_head, pos0 + i);
        rope(c, k, hp->n_head_kv, pos0 + i);
        for (int64_t h = 0; h < hp->n_head_kv; h++) {
            memcpy(kc + ((size_t)h * c->n_ctx + (size_t)(pos0 + i)) * hd, k + h * hd, sizeof(float) * (size_t)hd);
            for (int64_t d = 0; d < hd; d++) vc[((size_t)h * hd + (size_t)d) * c->n_ctx + (size_t)(pos0 + i)] = v[h * hd + d];
        }
    }
    if (sm_attention(c, l, c->q, n, pos0, c->att)) return -1;
    if (matmul(&L->wo, c->att, n, c->tmp)) return -1;

#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *x = c->x + i * E;
        const float *t = c->tmp + i * E;
        for (int64_t j = 0; j < E; j++) x[j] += t[j];
        rms_norm(x, L->ffn_norm, c->xn + i * E, E, hp->rms_eps);
    }
    if (matmul(&L->gate, c->xn, n, c->gate) || matmul(&L->up, c->xn, n, c->up)) return -1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *g = c->gate + i * F;
        const float *u = c->up + i * F;
        for (int64_t j = 0; j < F; j++) g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
    if (matmul(&L->down, c->gate, n, c->tmp)) return -1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *x = c->x + i * E;
        const float *t = c->tmp + i * E;
        for (int64_t j = 0; j < E; j++) x[j] += t[j];
    }
    return 0;
}

static int batch(sm_context *c, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first, float *logits) {
    const sm_model *m = c->m;
    const sm_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    for (int64_t i = 0; i < n; i++)
        if (sm_row_to_f32(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)tokens[i] * m->tok_embd.stride,
                          c->x + i * E, E))
            return -1;
    for (int64_t l = 0; l < hp->n_layer; l++)
        if (layer(c, l, n, pos0)) return -1;
    if (!logits || out_first >= n) return 0;
    const int64_t n_out = n - out_first;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_out; i++) rms_norm(c->x + (out_first + i) * E, m->output_norm, c->xn + i * E, E, hp->rms_eps);
    return matmul(&m->output, c->xn, n_out, logits);
}

int sm_model_eval(const sm_model *m, sm_context *c, const int32_t *tokens, int64_t n, int64_t pos0,
                  int64_t out_first, float *logits) {
    if (c->m != m) return sm_error("evaluation context belongs to another model");
    if (n < 0 || pos0 < 0 || pos0 > c->n_past || pos0 + n > c->n_ctx)
        return sm_error("cannot evaluate %lld tokens at position %lld: the context holds %lld of %lld positions",
                        (long long)n, (long long)pos0, (long long)c->n_past, (long long)c->n_ctx);
    if (out_first < 0) out_first = 0;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return sm_error("token id %d at index %lld is outside the vocabulary (%lld tokens)", tokens[i],
                            (long long)i, (long long)m->hp.n_vocab);
    c->n_past = pos0;
    for (int64_t b0 = 0; b0 < n; b0 += c->n_batch) {
        const int64_t nb = n - b0 < c->n_batch ? n - b0 : c->n_batch;
        const int64_t first = out_first > b0 ? out_first - b0 : 0;
        float *out = logits && b0 + first >= out_first ? logits + (b0 + first - out_first) * m->hp.n_vocab : NULL;
        if (batch(c, tokens + b0, nb, pos0 + b0, first, out)) return -1;
        c->n_past = pos0 + b0 + nb;
    }
    return 0;
}

/* attention.c - causal multi-head attention (GQA) of a batch over the KV cache.
 *
 * For each head and each block of up to QBLOCK queries: the scores Sᵀ (keys x queries) are
 * one matrix product of the cached keys with the block's queries (only the keys its last
 * query may see); the softmax runs down each column with the causal mask; the output is a
 * second product of the transposed cached values with the probabilities, written straight
 * into the feature-major output. Work items (head, query block) are spread over threads and
 * each is computed entirely by one thread, so results do not depend on the thread count. */
#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

#define QBLOCK 64

/* Softmax down the columns of s (n_keys x qn, row j = key j); query i sees keys <= base + i. */
static void causal_softmax(float *s, int64_t n_keys, int64_t qn, int64_t base, float scale) {
    float mx[QBLOCK], sum[QBLOCK];
    for (int64_t i = 0; i < qn; i++) mx[i] = -INFINITY, sum[i] = 0.0f;
    for (int64_t j = 0; j < n_keys; j++) {
        float *row = s + j * qn;
        for (int64_t i = j > base ? j - base : 0; i < qn; i++) {
            row[i] *= scale;
            if (row[i] > mx[i]) mx[i] = row[i];
        }
    }
    for (int64_t j = 0; j < n_keys; j++) {
        float *row = s + j * qn;
        const int64_t first = j > base ? j - base : 0;
        for (int64_t i = 0; i < first && i < qn; i++) row[i] = 0.0f;
        for (int64_t i = first; i < qn; i++) row[i] -= mx[i];
        if (first < qn) sm_vec_exp(row + first, qn - first);
        for (int64_t i = first; i < qn; i++) sum[i] += row[i];
    }
    for (int64_t i = 0; i < qn; i++) sum[i] = 1.0f / sum[i];
    for (int64_t j = 0; j < n_keys; j++)
        for (int64_t i = 0; i < qn; i++) s[j * qn + i] *= sum[i];
}

/* causal_softmax with Gemma 2's extras: scores scaled, soft-capped (cap > 0: cap * tanh(s / cap)),
 * and, with a window w > 0, key j hidden from query i unless (base + i) - j < w. */
static void capped_window_softmax(float *s, int64_t n_keys, int64_t qn, int64_t base, float scale, float cap, int64_t w) {
    for (int64_t i = 0; i < qn; i++) {
        const int64_t last = base + i, first = w > 0 && last - w + 1 > 0 ? last - w + 1 : 0;
        float mx = -INFINITY;
        for (int64_t j = first; j <= last; j++) {
            float v = s[j * qn + i] * scale;
            if (cap > 0) v = tanhf(v / cap) * cap;
            s[j * qn + i] = v;
            if (v > mx) mx = v;
        }
        double sum = 0;
        for (int64_t j = 0; j < n_keys; j++) {
            if (j < first || j > last) {
                s[j * qn + i] = 0.0f;
                continue;
            }
            const float e = expf(s[j * qn + i] - mx);
            s[j * qn + i] = e;
            sum += e;
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = first; j <= last; j++) s[j * qn + i] *= inv;
    }
}

int sm_attention(const sm_context *c, int64_t layer, const float *q, int64_t n, int64_t pos0, float *out) {
    if (n <= 0) return 0; /* no queries (the last layer when no logits are wanted) */
    const sm_model *m = c->m;
    const int64_t hd = m->head_dim, n_head = m->hp.n_head, ld = c->ld;
    const int64_t group = n_head / m->hp.n_head_kv;
    const int64_t n_blocks = (n + QBLOCK - 1) / QBLOCK, max_qn = n < QBLOCK ? n : QBLOCK;
    const float *kc = c->k_cache + (size_t)SM_KV_SLOT(c, layer) * m->kv_dim * c->n_ctx;
    const float *vc = c->v_cache + (size_t)SM_KV_SLOT(c, layer) * m->kv_dim * c->n_ctx;
    const float scale = c->block.attn_scale;
    /* Gemma 2: soft-capped scores, a sliding window on the layers of the pattern */
    const float cap = c->block.attn_softcap;
    const int64_t window = sm_block_swa_layer(&c->block, layer) ? c->block.window : 0;
    const bool plain = cap <= 0 && window <= 0;
    /* multiply-adds of the two products: small ones are not worth waking threads for */
    const double work = 2.0 * (double)n_head * (double)n * (double)(pos0 + n) * (double)hd;
    int failed = 0;
#pragma omp parallel reduction(| : failed) if (work >= (1 << 21))
    {
        float *s = malloc(sizeof(float) * (size_t)max_qn * (size_t)(pos0 + n)); /* a block's scores */
        if (!s) failed = 1;
#pragma omp for schedule(dynamic)
        for (int64_t item = 0; item < n_head * n_blocks; item++) {
            if (!s) continue;
            const int64_t h = item / n_blocks, b = item % n_blocks;
            const int64_t i0 = b * QBLOCK, qn = n - i0 < QBLOCK ? n - i0 : QBLOCK;
            const int64_t n_keys = pos0 + i0 + qn; /* keys visible to the block's last query */
            const float *kh = kc + (size_t)(h / group) * c->n_ctx * hd;
            const float *vh = vc + (size_t)(h / group) * hd * c->n_ctx;
            if (sm_matmul_serial(SM_TYPE_F32, kh, sizeof(float) * (size_t)hd, n_keys, hd, q + h * hd * ld + i0, ld, qn,
                                 s, qn)) {
                failed = 1;
                continue;
            }
            if (plain) causal_softmax(s, n_keys, qn, pos0 + i0, scale);
            else capped_window_softmax(s, n_keys, qn, pos0 + i0, scale, cap, window);
            if (sm_matmul_serial(SM_TYPE_F32, vh, sizeof(float) * (size_t)c->n_ctx, hd, n_keys, s, qn, qn,
                                 out + h * hd * ld + i0, ld))
                failed = 1;
        }
        free(s);
    }
    return failed ? sm_error("attention: out of memory") : 0;
}

/* attention.c - causal multi-head attention (GQA) of a batch over the KV cache.
 *
 * For each head and each block of up to QBLOCK queries, the scores are one matrix product
 * with the cached keys (only the keys the block's last query may see), the softmax runs
 * per query with the causal mask, and the output is a second product with the transposed
 * cached values. Work items (head, query block) are spread over threads; each is computed
 * entirely by one thread, so results do not depend on the thread count. */
#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

#define QBLOCK 64

int sm_attention(const sm_context *c, int64_t layer, const float *q, int64_t n, int64_t pos0, float *out) {
    const sm_model *m = c->m;
    const int64_t hd = m->head_dim, Q = m->q_dim, n_head = m->hp.n_head;
    const int64_t group = n_head / m->hp.n_head_kv;
    const int64_t n_blocks = (n + QBLOCK - 1) / QBLOCK;
    const float *kc = c->k_cache + (size_t)layer * m->kv_dim * c->n_ctx;
    const float *vc = c->v_cache + (size_t)layer * m->kv_dim * c->n_ctx;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t max_keys = pos0 + n;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *s = malloc(sizeof(float) * (size_t)QBLOCK * (size_t)max_keys);
        if (!s) failed = 1;
#pragma omp for schedule(dynamic)
        for (int64_t item = 0; item < n_head * n_blocks; item++) {
            if (!s) continue;
            const int64_t h = item / n_blocks, b = item % n_blocks;
            const int64_t i0 = b * QBLOCK, qn = n - i0 < QBLOCK ? n - i0 : QBLOCK;
            const int64_t n_keys = pos0 + i0 + qn; /* keys visible to the block's last query */
            const float *kh = kc + (size_t)(h / group) * c->n_ctx * hd;
            const float *vh = vc + (size_t)(h / group) * hd * c->n_ctx;
            if (sm_matmul_serial(SM_TYPE_F32, kh, sizeof(float) * (size_t)hd, n_keys, hd, q + i0 * Q + h * hd, Q, qn, s,
                                 n_keys)) {
                failed = 1;
                continue;
            }
            for (int64_t i = 0; i < qn; i++) {
                float *row = s + i * n_keys;
                const int64_t visible = pos0 + i0 + i + 1;
                float mx = -INFINITY;
                for (int64_t j = 0; j < visible; j++) {
                    row[j] *= scale;
                    if (row[j] > mx) mx = row[j];
                }
                float sum = 0.0f;
                for (int64_t j = 0; j < visible; j++) {
                    row[j] = expf(row[j] - mx);
                    sum += row[j];
                }
                const float inv = 1.0f / sum;
                for (int64_t j = 0; j < visible; j++) row[j] *= inv;
                for (int64_t j = visible; j < n_keys; j++) row[j] = 0.0f;
            }
            if (sm_matmul_serial(SM_TYPE_F32, vh, sizeof(float) * (size_t)c->n_ctx, hd, n_keys, s, n_keys, qn,
                                 out + i0 * Q + h * hd, Q))
                failed = 1;
        }
        free(s);
    }
    return failed ? sm_error("attention: out of memory") : 0;
}

/* q_legacy.c - the 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (scalar).
 *
 * Without importance weights each type uses ggml's reference rule (absmax or min/max scale,
 * round each value); with them, ggml's weighted searches (make_qx_quants for the symmetric
 * types, make_qkx3_quants for the ones with a min). Q8_0 has no weighted variant. */
#include "quantize/codec_internal.h"

#include <float.h>
#include <math.h>

/* ---- reference quantizers (no importance weights) ---- */

static void q4_0_ref(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK32; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK32 / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK32 / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)Q_MIN(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)Q_MIN(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void q4_1_ref(const float *x, block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < QK32 / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK32 / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)Q_MIN(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)Q_MIN(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

/* Packs 32 five-bit levels: low nibbles of j and j+16 share qs[j], fifth bits go to qh. */
void q_pack_q5(const uint8_t *L, uint8_t *qs, uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < QK32 / 2; ++j) {
        const uint8_t xi0 = L[j], xi1 = L[j + QK32 / 2];
        qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + QK32 / 2);
    }
    for (int k = 0; k < 4; k++) qh_out[k] = (uint8_t)(qh >> (8 * k));
}

static void q5_0_ref(const float *x, block_q5_0 *y, int64_t nb) {
    uint8_t L[QK32];
    for (int64_t i = 0; i < nb; i++, x += QK32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK32; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK32; ++j) L[j] = (uint8_t)Q_MIN(31, (int8_t)(x[j] * id + 16.5f));
        q_pack_q5(L, y[i].qs, y[i].qh);
    }
}

static void q5_1_ref(const float *x, block_q5_1 *y, int64_t nb) {
    uint8_t L[QK32];
    for (int64_t i = 0; i < nb; i++, x += QK32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < QK32; ++j) L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        q_pack_q5(L, y[i].qs, y[i].qh);
    }
}

/* ---- weighted quantizers ---- */

float q_row_sigma2(const float *x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / n;
}

static void weights_of(const float *xb, const float *qw, float sigma2, float *w) {
    for (int j = 0; j < QK32; ++j) w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

void q_quantize_q4_0(const float *x, void *vy, int64_t n, const float *qw) {
    block_q4_0 *y = vy;
    if (!qw) { q4_0_ref(x, y, n / QK32); return; }
    const float sigma2 = q_row_sigma2(x, n);
    float weight[QK32];
    int8_t L[QK32];
    for (int64_t ib = 0; ib < n / QK32; ++ib) {
        const float *xb = x + QK32 * ib;
        weights_of(xb, qw + QK32 * ib, sigma2, weight);
        y[ib].d = f2h(q_make_qx_quants(QK32, 8, xb, L, weight));
        for (int j = 0; j < 16; ++j) y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

void q_quantize_q4_1(const float *x, void *vy, int64_t n, const float *qw) {
    block_q4_1 *y = vy;
    if (!qw) { q4_1_ref(x, y, n / QK32); return; }
    const float sigma2 = q_row_sigma2(x, n);
    float weight[QK32];
    uint8_t L[QK32], Laux[QK32];
    for (int64_t ib = 0; ib < n / QK32; ++ib) {
        const float *xb = x + QK32 * ib;
        weights_of(xb, qw + QK32 * ib, sigma2, weight);
        float min;
        float d = q_make_qkx3_quants(QK32, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = f2h(d);
        y[ib].m = f2h(-min);
        for (int j = 0; j < 16; ++j) y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

void q_quantize_q5_0(const float *x, void *vy, int64_t n, const float *qw) {
    block_q5_0 *y = vy;
    if (!qw) { q5_0_ref(x, y, n / QK32); return; }
    const float sigma2 = q_row_sigma2(x, n);
    float weight[QK32];
    int8_t L[QK32];
    for (int64_t ib = 0; ib < n / QK32; ++ib) {
        const float *xb = x + QK32 * ib;
        weights_of(xb, qw + QK32 * ib, sigma2, weight);
        y[ib].d = f2h(q_make_qx_quants(QK32, 16, xb, L, weight));
        q_pack_q5((const uint8_t *)L, y[ib].qs, y[ib].qh);
    }
}

void q_quantize_q5_1(const float *x, void *vy, int64_t n, const float *qw) {
    block_q5_1 *y = vy;
    if (!qw) { q5_1_ref(x, y, n / QK32); return; }
    const float sigma2 = q_row_sigma2(x, n);
    float weight[QK32];
    uint8_t L[QK32], Laux[QK32];
    for (int64_t ib = 0; ib < n / QK32; ++ib) {
        const float *xb = x + QK32 * ib;
        weights_of(xb, qw + QK32 * ib, sigma2, weight);
        float min;
        float d = q_make_qkx3_quants(QK32, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = f2h(d);
        y[ib].m = f2h(-min);
        q_pack_q5(L, y[ib].qs, y[ib].qh);
    }
}

void q_quantize_q8_0(const float *x, void *vy, int64_t n, const float *qw) {
    (void)qw; /* ggml's Q8_0 ignores importance weights */
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float amax = 0.0f;
        for (int j = 0; j < QK32; j++) amax = Q_MAX(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK32; ++j) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* ---- dequantizers ---- */

void q_dequantize_q4_0(const void *vx, float *y, int64_t n) {
    const block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK32 / 2; ++j) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK32 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void q_dequantize_q4_1(const void *vx, float *y, int64_t n) {
    const block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < QK32 / 2; ++j) {
            y[j] = (x[i].qs[j] & 0x0F) * d + m;
            y[j + QK32 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

void q_dequantize_q5_0(const void *vx, float *y, int64_t n) {
    const block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = h2f(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK32 / 2; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[j] = x0 * d;
            y[j + QK32 / 2] = x1 * d;
        }
    }
}

void q_dequantize_q5_1(const void *vx, float *y, int64_t n) {
    const block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK32 / 2; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
            y[j] = x0 * d + m;
            y[j + QK32 / 2] = x1 * d + m;
        }
    }
}

void q_dequantize_q8_0(const void *vx, float *y, int64_t n) {
    const block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK32; ++j) y[j] = x[i].qs[j] * d;
    }
}

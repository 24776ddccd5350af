/* q2k_q3k.c - the 2- and 3-bit k-quants, Q2_K and Q3_K (scalar).
 *
 * A 256-element super-block holds 16 groups of 16 with their own 4-bit (Q2_K: scale and
 * min) or 6-bit (Q3_K: signed scale) sub-scales under one f16 super-scale. Without
 * importance weights these follow ggml's quantize_row_q{2,3}_K_ref, with them ggml's
 * quantize_row_q{2,3}_K_impl; afterwards every value is re-rounded against the stored
 * (f16-rounded) scales, as ggml does. */
#include "quantize/codec_internal.h"

#include <math.h>

/* qs of Q2_K and the low bits of Q3_K: 4 two-bit levels per byte, 32 bytes per 128 values. */
void q_pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* Final Q2_K levels against the stored sub-scales and mins. */
static void q2_requantize(const float *x, const block_q2_K *y, float dm, float mm, uint8_t *L) {
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dm * (y->scales[j] & 0xF);
        if (!d) continue;
        const float m = mm * (y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = q_nearest_int((x[16 * j + ii] + m) / d);
            L[16 * j + ii] = (uint8_t)Q_MAX(0, Q_MIN(3, l));
        }
    }
}

void q_q2_K_ref_scales(const float *scales, const float *mins, block_q2_K *y) {
    const float q4scale = 15.f;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) y->scales[j] = (uint8_t)q_nearest_int(iscale * scales[j]);
        y->d = f2h(max_scale / q4scale);
    } else {
        for (int j = 0; j < QK_K / 16; ++j) y->scales[j] = 0;
        y->d = f2h(0.f);
    }
    if (max_min > 0) {
        float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; ++j) y->scales[j] |= (uint8_t)(q_nearest_int(iscale * mins[j]) << 4);
        y->dmin = f2h(max_min / q4scale);
    } else {
        y->dmin = f2h(0.f);
    }
}

void q_q2_K_weighted_scales(const float *scales, const float *mins, const float *sw, block_q2_K *y) {
    uint8_t Ls[QK_K / 16], Lm[QK_K / 16];
    float dm = q_make_qp_quants(QK_K / 16, 15, scales, Ls, sw);
    float mm = q_make_qp_quants(QK_K / 16, 15, mins, Lm, sw);
    y->d = f2h(dm);
    y->dmin = f2h(mm);
    for (int j = 0; j < QK_K / 16; ++j) y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
}

static void q2_K_ref(const float *x, block_q2_K *y) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    for (int j = 0; j < QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = q_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    }
    q_q2_K_ref_scales(scales, mins, y);
    q2_requantize(x, y, h2f(y->d), h2f(y->dmin), L);
    q_pack_2bit(L, y->qs);
}

static void q2_K_weighted(const float *x, block_q2_K *y, const float *qw) {
    uint8_t L[QK_K], Laux[16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], weight[16];
    float sumx2 = 0;
    for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
    float sigma2 = sumx2 / QK_K;
    for (int j = 0; j < QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        sw[j] = 0;
        for (int l = 0; l < 16; ++l) sw[j] += weight[l];
        scales[j] = q_make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    q_q2_K_weighted_scales(scales, mins, sw, y);
    q2_requantize(x, y, h2f(y->d), h2f(y->dmin), L);
    q_pack_2bit(L, y->qs);
}

void q_quantize_q2_K(const float *x, void *vy, int64_t n, const float *qw) {
    block_q2_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++) {
        if (qw) q2_K_weighted(x + QK_K * i, y + i, qw + QK_K * i);
        else q2_K_ref(x + QK_K * i, y + i);
    }
}

void q_dequantize_q2_K(const void *vx, float *y, int64_t n) {
    const block_q2_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int k = 0; k < QK_K; k += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* ---- Q3_K ---- */

/* Stores sub-scale j (6 bits, already offset by 32) into the 12 packed scale bytes. */
static void q3_put_scale(uint8_t *scales, int j, int l) {
    if (j < 8) scales[j] = (uint8_t)(l & 0xF);
    else scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
}

int q_q3_K_scale(const uint8_t *scales, int j) {
    int8_t sc = (int8_t)(j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4);
    return (int8_t)((sc | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
}

void q_q3_K_pack(int8_t *L, block_q3_K *y) {
    memset(y->hmask, 0, QK_K / 8);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; ++j) {
        if (L[j] > 3) {
            y->hmask[m] |= hm;
            L[j] = (int8_t)(L[j] - 4);
        }
        if (++m == QK_K / 8) { m = 0; hm = (uint8_t)(hm << 1); }
    }
    q_pack_2bit((const uint8_t *)L, y->qs);
}

/* Re-rounds against the stored scales, then packs. */
static void q3_finish(const float *x, block_q3_K *y, int8_t *L) {
    for (int j = 0; j < QK_K / 16; ++j) {
        float d = h2f(y->d) * q_q3_K_scale(y->scales, j);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = q_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(Q_MAX(-4, Q_MIN(3, l)) + 4);
        }
    }
    q_q3_K_pack(L, y);
}

void q_q3_K_ref_scales(const float *scales, block_q3_K *y) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        float scale = fabsf(scales[j]);
        if (scale > amax) { amax = scale; max_scale = scales[j]; }
    }
    memset(y->scales, 0, 12);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            int8_t l = (int8_t)q_nearest_int(iscale * scales[j]);
            l = (int8_t)(Q_MAX(-32, Q_MIN(31, l)) + 32);
            q3_put_scale(y->scales, j, l);
        }
        y->d = f2h(1 / iscale);
    } else {
        y->d = f2h(0.f);
    }
}

void q_q3_K_weighted_scales(const float *scales, const float *sw, block_q3_K *y) {
    int8_t Ls[QK_K / 16];
    memset(y->scales, 0, 12);
    float d_block = q_make_qx_quants(QK_K / 16, 32, scales, Ls, sw);
    for (int j = 0; j < QK_K / 16; ++j) q3_put_scale(y->scales, j, Ls[j]);
    y->d = f2h(d_block);
}

static void q3_K_ref(const float *x, block_q3_K *y) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int j = 0; j < QK_K / 16; ++j) scales[j] = q_make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
    q_q3_K_ref_scales(scales, y);
    q3_finish(x, y, L);
}

static void q3_K_weighted(const float *x, block_q3_K *y, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16], weight[16], sw[QK_K / 16];
    float sumx2 = 0;
    for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
    float sigma2 = 2 * sumx2 / QK_K;
    for (int j = 0; j < QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 16; ++l) sumw += weight[l];
        sw[j] = sumw;
        scales[j] = q_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
    }
    q_q3_K_weighted_scales(scales, sw, y);
    q3_finish(x, y, L);
}

void q_quantize_q3_K(const float *x, void *vy, int64_t n, const float *qw) {
    block_q3_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++) {
        if (qw) q3_K_weighted(x + QK_K * i, y + i, qw + QK_K * i);
        else q3_K_ref(x + QK_K * i, y + i);
    }
}

void q_dequantize_q3_K(const void *vx, float *y, int64_t n) {
    const block_q3_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = h2f(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int k = 0; k < QK_K; k += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * q_q3_K_scale(x[i].scales, is++);
                    for (int l = 16 * half; l < 16 * half + 16; ++l)
                        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

/* q_iq4.c - the non-linear 4-bit types IQ4_NL (blocks of 32) and IQ4_XS (super-blocks of
 * 256 with 6-bit sub-scales), scalar.
 *
 * Both map each value to the nearest of 16 fixed levels times a block scale. The scale
 * search is ggml's quantize_row_iq4_nl_impl with ntry = 7 (what ggml_quantize_chunk uses
 * with and without importance weights): weights x^2, or imatrix * sqrt(sigma2 + x^2). */
#include "quantize/codec_internal.h"

#include <math.h>

const int8_t sm_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Best scale of one 32-value group (levels into Lb); 0 for an all-zero group. */
static float iq4_group_scale(const float *xb, const float *weight, uint8_t *Lb) {
    const int8_t *values = sm_iq4nl_values;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        float ax = fabsf(xb[j]);
        if (ax > amax) { amax = ax; max = xb[j]; }
    }
    if (amax < GROUP_MAX_EPS) return 0;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        int l = q_best_index_int8(16, values, id * xb[j]);
        Lb[j] = (uint8_t)l;
        float q = values[l], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -Q_IQ4_NTRY; itry <= Q_IQ4_NTRY; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            int l = q_best_index_int8(16, values, id * xb[j]);
            float q = values[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* sigma2 = 2 * mean square over the super-block; group weights from it. */
static float iq4_sigma2(const float *x, int n) {
    float sigma2 = 0;
    for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / n;
    return sigma2;
}

static void iq4_weights(const float *xb, const float *qw, float sigma2, float *weight) {
    if (qw) {
        for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
    } else {
        for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
    }
}

void q_pack_nibbles(const uint8_t *L, uint8_t *q4, int n) {
    for (int i = 0; i < n / 32; ++i)
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void q_quantize_iq4_nl(const float *x, void *vy, int64_t n, const float *qw) {
    block_iq4_nl *y = vy;
    uint8_t L[32];
    float weight[32];
    for (int64_t ib = 0; ib < n / 32; ++ib, x += 32) {
        const float sigma2 = iq4_sigma2(x, 32);
        iq4_weights(x, qw ? qw + 32 * ib : NULL, sigma2, weight);
        float scale = iq4_group_scale(x, weight, L);
        y[ib].d = f2h(scale);
        float id = scale ? 1 / scale : 0;
        for (int j = 0; j < 32; ++j) L[j] = (uint8_t)q_best_index_int8(16, sm_iq4nl_values, id * x[j]);
        q_pack_nibbles(L, y[ib].qs, 32);
    }
}

void q_iq4_xs_scales(const float *scales, block_iq4_xs *y, float *idl) {
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        float abs_d = fabsf(scales[ib]);
        if (abs_d > amax_scale) { amax_scale = abs_d; max_scale = scales[ib]; }
    }
    uint16_t scales_h = 0;
    float d = -max_scale / 32;
    y->d = f2h(d);
    float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        int l = q_nearest_int(id * scales[ib]);
        l = Q_MAX(-32, Q_MIN(31, l));
        float dl = d * l;
        idl[ib] = dl ? 1 / dl : 0.f;
        l += 32;
        uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
        if (ib % 2 == 0) y->scales_l[ib / 2] = l_l;
        else y->scales_l[ib / 2] |= (uint8_t)(l_l << 4);
        scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
    }
    y->scales_h = scales_h;
}

void q_quantize_iq4_xs(const float *x, void *vy, int64_t n, const float *qw) {
    block_iq4_xs *y = vy;
    uint8_t L[QK_K];
    float weight[32], scales[QK_K / 32], idl[QK_K / 32];
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl, x += QK_K) {
        const float *qwb = qw ? qw + QK_K * ibl : NULL;
        const float sigma2 = iq4_sigma2(x, QK_K);
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            iq4_weights(x + 32 * ib, qwb ? qwb + 32 * ib : NULL, sigma2, weight);
            scales[ib] = iq4_group_scale(x + 32 * ib, weight, L + 32 * ib);
        }
        q_iq4_xs_scales(scales, &y[ibl], idl);
        for (int ib = 0; ib < QK_K / 32; ++ib)
            for (int j = 0; j < 32; ++j)
                L[32 * ib + j] = (uint8_t)q_best_index_int8(16, sm_iq4nl_values, idl[ib] * x[32 * ib + j]);
        q_pack_nibbles(L, y[ibl].qs, QK_K);
    }
}

void q_dequantize_iq4_nl(const void *vx, float *y, int64_t n) {
    const block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * sm_iq4nl_values[x[i].qs[j] & 0xf];
            y[j + 16] = d * sm_iq4nl_values[x[i].qs[j] >> 4];
        }
    }
}

void q_dequantize_iq4_xs(const void *vx, float *y, int64_t n) {
    const block_iq4_xs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = h2f(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ++ib, y += 32, qs += 16) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * sm_iq4nl_values[qs[j] & 0xf];
                y[j + 16] = dl * sm_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

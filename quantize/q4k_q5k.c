/* q4k_q5k.c - the 4- and 5-bit k-quants with mins, Q4_K and Q5_K (scalar).
 *
 * A 256-element super-block holds 8 groups of 32, each x ~ d*sc*q - dmin*m with 6-bit sc
 * and m under two f16 super-scales. Without importance weights the group search is ggml's
 * make_qkx2_quants and the sub-scales are rounded against the largest one
 * (quantize_row_q{4,5}_K_ref); with them make_qkx3_quants and make_qp_quants
 * (quantize_row_q{4,5}_K_impl). Then every value is re-rounded against the stored scales. */
#include "quantize/codec_internal.h"

#include <math.h>

/* Packs 6-bit sub-scale ls and min lm of group j into the 12 scale bytes. */
static void put_scale_min_k4(uint8_t *s, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* Final levels in [0, nmax] against the stored scales and mins. */
static void requantize_k4(const float *x, uint16_t dh, uint16_t mh, const uint8_t *scales, int nmax, uint8_t *L) {
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        q_get_scale_min_k4(j, scales, &sc, &m);
        const float d = h2f(dh) * sc;
        if (!d) continue;
        const float dm = h2f(mh) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = q_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)Q_MAX(0, Q_MIN(nmax, l));
        }
    }
}

/* The reference group search: weights av_x + |x| and the qkx2 search. */
static void k4_ref_search(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *L, float *scales,
                          float *mins) {
    uint8_t Laux[32];
    float weights[32];
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = q_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta,
                                       nstep, false);
    }
}

void q_k4_ref_superscales(const float *scales, const float *mins, uint16_t *dh, uint16_t *mh, uint8_t *packed) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)q_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)q_nearest_int(inv_min * mins[j]);
        put_scale_min_k4(packed, j, Q_MIN(63, ls), Q_MIN(63, lm));
    }
    *dh = f2h(max_scale / 63.f);
    *mh = f2h(max_min / 63.f);
}

/* 2 * mean square of a super-block: the weighted search's sigma2. */
static float superblock_sigma2(const float *x) {
    float sum_x2 = 0;
    for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
    return 2 * sum_x2 / QK_K;
}

/* The weighted group search: weights qw * sqrt(sigma2 + x^2) and the qkx3 search; sw gets
 * each group's weight sum. */
static void k4_weighted_search(const float *x, const float *qw, int nmax, uint8_t *L, float *scales, float *mins,
                               float *sw) {
    uint8_t Laux[32];
    float weights[32];
    float sigma2 = superblock_sigma2(x);
    for (int j = 0; j < QK_K / 32; ++j) {
        for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = q_make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
}


void q_k4_weighted_superscales(const float *scales, const float *mins, const float *sw, bool clamp_scales,
                               uint16_t *dh, uint16_t *mh, uint8_t *packed) {
    uint8_t Ls[QK_K / 32], Lm[QK_K / 32];
    float d_block = q_make_qp_quants(QK_K / 32, 63, scales, Ls, sw);
    float m_block = q_make_qp_quants(QK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = Ls[j], lm = Lm[j];
        if (clamp_scales) { ls = Q_MIN(63, ls); lm = Q_MIN(63, lm); }
        put_scale_min_k4(packed, j, ls, lm);
    }
    *dh = f2h(d_block);
    *mh = f2h(m_block);
}

void q_pack_q4_K(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

void q_pack_q5_K(const uint8_t *L, uint8_t *qh, uint8_t *ql) {
    memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int k = 0; k < QK_K; k += 64, ql += 32) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[k + j], l2 = L[k + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
    }
}

/* One super-block of Q4_K (nmax 15) or Q5_K (nmax 31): levels into L, scales into the header. */
static void k4_superblock(const float *x, const float *qw, int nmax, uint16_t *dh, uint16_t *mh, uint8_t *packed,
                          uint8_t *L) {
    float scales[QK_K / 32], mins[QK_K / 32], sw[QK_K / 32];
    if (qw) {
        k4_weighted_search(x, qw, nmax, L, scales, mins, sw);
        q_k4_weighted_superscales(scales, mins, sw, nmax == 31, dh, mh, packed);
    } else {
        if (nmax == 15) k4_ref_search(x, 15, -1.f, 0.1f, 20, L, scales, mins);
        else k4_ref_search(x, 31, -0.5f, 0.1f, 15, L, scales, mins);
        q_k4_ref_superscales(scales, mins, dh, mh, packed);
    }
    requantize_k4(x, *dh, *mh, packed, nmax, L);
}

void q_quantize_q4_K(const float *x, void *vy, int64_t n, const float *qw) {
    block_q4_K *y = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        k4_superblock(x + QK_K * i, qw ? qw + QK_K * i : NULL, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        q_pack_q4_K(L, y[i].qs);
    }
}

void q_quantize_q5_K(const float *x, void *vy, int64_t n, const float *qw) {
    block_q5_K *y = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        k4_superblock(x + QK_K * i, qw ? qw + QK_K * i : NULL, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        q_pack_q5_K(L, y[i].qh, y[i].qs);
    }
}

void q_dequantize_q4_K(const void *vx, float *y, int64_t n) {
    const block_q4_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        uint8_t sc, m;
        for (int is = 0; is < QK_K / 32; is += 2, q += 32) {
            q_get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            q_get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void q_dequantize_q5_K(const void *vx, float *y, int64_t n) {
    const block_q5_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int is = 0; is < QK_K / 32; is += 2, ql += 32) {
            q_get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            q_get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

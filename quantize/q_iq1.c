/* q_iq1.c - the 1-bit-class i-quants IQ1_S (groups of 32, one shift sign each) and IQ1_M
 * (groups of 16, a shift sign per 8 values), scalar: quantize and dequantize.
 *
 * Each 8 values are a point of the 2048-point {-1,0,1}^8 grid plus a shift of +-1/8. The
 * search sorts a group's values, tries every split of the sorted order into the levels
 * -1/0/+1 (with each shift) and keeps the best weighted fit; an off-grid result takes the
 * nearest neighbour. The sort is the C library's qsort with ggml's comparator on ggml's
 * (value, index) pairs, so equal values end up in the same order as in ggml. */
#include "quantize/codec_internal.h"
#include "quantize/iq_grids.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#define IQ1_DELTA 0.125f

static const float X_P[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
static const float X_M[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};

typedef struct { float v; int32_t i; } pair; /* ggml's float pairs with the index in the second */

static int pair_cmp(const void *a, const void *b) {
    const float l = ((const pair *)a)->v, r = ((const pair *)b)->v;
    return l < r ? -1 : l > r ? 1 : 0;
}

static void sort_group(const float *xb, int n, pair *p) {
    for (int j = 0; j < n; ++j) p[j] = (pair){xb[j], j};
    qsort(p, (size_t)n, sizeof(pair), pair_cmp);
}

/* Off-grid 8 levels: the neighbour nearest (weighted) to scale * xx[level]; its levels into L. */
static int iq1_neighbour(const q_iq_grid *g, int u, const float *xval, const float *w, float scale, const float *xx,
                         int8_t *L) {
    const uint16_t *nb = q_iq_neighbours(g, u);
    float best = FLT_MAX;
    int gi = nb[1]; /* (only NaN distances leave none better than FLT_MAX) */
    for (int j = 1; j <= nb[0]; ++j) {
        const int8_t *pg = g->pos + 8 * nb[j];
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            float q = xx[(pg[i] - 1) / 2];
            float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) { best = d2; gi = nb[j]; }
    }
    const int8_t *pg = g->pos + 8 * gi;
    for (int i = 0; i < 8; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return gi;
}

/* Grid index of 8 levels, or the neighbour's (*off set when the levels were off the grid). */
static int iq1_index(const q_iq_grid *g, int8_t *L, const float *xb, const float *w, float scale, const float *xx,
                     bool *off) {
    int u = 0;
    for (int j = 0; j < 8; ++j) u |= L[j] << 2 * j;
    if (g->map[u] >= 0) return g->map[u];
    *off = true;
    return iq1_neighbour(g, u, xb, w, scale, xx, L);
}

static void iq1_weights(const float *xb, const float *qw, float sigma2, int n, float *weight) {
    for (int i = 0; i < n; ++i) weight[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

static float amax_of(const float *xb, int n) {
    float max = fabsf(xb[0]);
    for (int i = 1; i < n; ++i) max = Q_MAX(max, fabsf(xb[i]));
    return max;
}

static float sigma2_of(const float *xbl) {
    float sumx2 = 0;
    for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
    return 2 * sumx2 / QK_K;
}

/* Levels from the best split (i1, i2) of the sorted order. */
static void split_levels(const pair *p, int n, int i1, int i2, int8_t *L) {
    for (int j = 0; j < n; ++j) L[p[j].i] = (int8_t)(j < i1 ? 0 : j < i2 ? 1 : 2);
}

void q_quantize_iq1_s(const float *x, void *vy, int64_t n, const float *qw) {
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_1S);
    block_iq1_s *y = vy;
    enum { BS = 32 };
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        memset(&y[ibl], 0, sizeof y[ibl]);
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = sigma2_of(xbl);
        float scales[QK_K / BS], max_scale = 0, weight[BS], sumx[BS + 1], sumw[BS + 1];
        int8_t shifts[QK_K / BS], L[BS];
        pair p[BS];
        for (int ib = 0; ib < QK_K / BS; ++ib) {
            const float *xb = xbl + BS * ib;
            iq1_weights(xb, qw + QK_K * ibl + BS * ib, sigma2, BS, weight);
            scales[ib] = 0, shifts[ib] = 1;
            if (amax_of(xb, BS) < 1e-12f) continue;
            sort_group(xb, BS, p);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < BS; ++j) {
                sumx[j + 1] = sumx[j] + weight[p[j].i] * xb[p[j].i];
                sumw[j + 1] = sumw[j] + weight[p[j].i];
            }
            float best = -FLT_MAX, scale = 0;
            int b1 = -1, b2 = -1, shift = 0;
            for (int i1 = 0; i1 <= BS; ++i1) {
                for (int i2 = i1; i2 <= BS; ++i2) {
                    for (int sgn = 0; sgn < 2; ++sgn) {
                        const float *xx = sgn ? X_M : X_P;
                        float sumqx = (sumx[i1] - sumx[0]) * xx[0] + (sumx[i2] - sumx[i1]) * xx[1] + (sumx[BS] - sumx[i2]) * xx[2];
                        float sumq2 = (sumw[i1] - sumw[0]) * xx[0] * xx[0] + (sumw[i2] - sumw[i1]) * xx[1] * xx[1] +
                                      (sumw[BS] - sumw[i2]) * xx[2] * xx[2];
                        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                            scale = sumqx / sumq2; best = scale * sumqx;
                            b1 = i1, b2 = i2, shift = sgn ? -1 : 1;
                        }
                    }
                }
            }
            if (b1 < 0 || b2 < 0 || shift == 0) continue;
            split_levels(p, BS, b1, b2, L);
            if (scale < 0) {
                for (int j = 0; j < BS; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale, shift = -shift;
            }
            const float *xx = shift == 1 ? X_P : X_M;
            bool off = false;
            int index[BS / 8];
            for (int k = 0; k < BS / 8; ++k) index[k] = iq1_index(g, L + 8 * k, xb + 8 * k, weight + 8 * k, scale, xx, &off);
            if (off) {
                float sumqx = 0, sumq2 = 0;
                for (int k = 0; k < BS / 8; ++k) {
                    const int8_t *pg = g->pos + 8 * index[k];
                    for (int j = 0; j < 8; ++j) {
                        float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
            }
            uint16_t h = 0;
            for (int k = 0; k < BS / 8; ++k) {
                y[ibl].qs[(BS / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h = (uint16_t)(h | (index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale, shifts[ib] = (int8_t)shift;
            max_scale = Q_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 15, id = 1 / d;
        y[ibl].d = f2h(d * 1.125f);
        for (int ib = 0; ib < QK_K / BS; ++ib) {
            int l = q_nearest_int(0.5f * (id * scales[ib] - 1));
            l = Q_MAX(0, Q_MIN(7, l));
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] = (uint16_t)(y[ibl].qh[ib] | l << 12);
        }
    }
}

/* IQ1_M's four shift combinations k: bit 1 = first 8 values shifted down, bit 0 = second. */
static const float *iq1m_xx(int k, int half) { return (half == 0 ? k < 2 : k % 2 == 0) ? X_P : X_M; }

void q_quantize_iq1_m(const float *x, void *vy, int64_t n, const float *qw) {
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_1S);
    static const uint8_t MASKS[4] = {0x00, 0x80, 0x08, 0x88};
    block_iq1_m *y = vy;
    enum { BS = 16 };
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        memset(&y[ibl], 0, sizeof y[ibl]);
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = sigma2_of(xbl);
        const float *qwb = qw ? qw + QK_K * ibl : NULL;
        float scales[QK_K / BS], max_scale = 0, weight[BS];
        int8_t shifts[QK_K / BS], L[BS];
        pair p[BS];
        for (int ib = 0; ib < QK_K / BS; ++ib) {
            const float *xb = xbl + BS * ib;
            iq1_weights(xb, qwb ? qwb + BS * ib : NULL, sigma2, BS, weight);
            scales[ib] = 0, shifts[ib] = 0;
            if (amax_of(xb, BS) < 1e-7f) continue;
            sort_group(xb, BS, p);
            float best = -FLT_MAX, scale = 0;
            int b1 = -1, b2 = -1, bk = -1;
            for (int i1 = 0; i1 <= BS; ++i1) {
                for (int i2 = i1; i2 <= BS; ++i2) {
                    /* sums for the 4 shift combinations: k = 2*(first half down) + (second half down) */
                    float sumqx[4] = {0}, sumq2[4] = {0};
                    for (int j = 0; j < BS; ++j) {
                        const int i = p[j].i, lv = j < i1 ? 0 : j < i2 ? 1 : 2;
                        const float wp = weight[i] * X_P[lv], wm = weight[i] * X_M[lv];
                        const float qp = wp * xb[i], qm = wm * xb[i], pp = wp * X_P[lv], mm = wm * X_M[lv];
                        /* first half: k 0,1 take X_P, k 2,3 X_M; second half: k 0,2 X_P, k 1,3 X_M */
                        const int a = i < BS / 2 ? 1 : 2; /* the k that pairs with k 0 on X_P */
                        sumqx[0] += qp, sumqx[a] += qp, sumqx[3 - a] += qm, sumqx[3] += qm;
                        sumq2[0] += pp, sumq2[a] += pp, sumq2[3 - a] += mm, sumq2[3] += mm;
                    }
                    for (int k = 0; k < 4; ++k) {
                        if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best * sumq2[k]) {
                            scale = sumqx[k] / sumq2[k]; best = scale * sumqx[k];
                            b1 = i1, b2 = i2, bk = k;
                        }
                    }
                }
            }
            if (b1 < 0 || b2 < 0 || bk < 0) continue;
            split_levels(p, BS, b1, b2, L);
            if (scale < 0) {
                for (int j = 0; j < BS; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale, bk = 3 - bk;
            }
            bool off = false;
            int index[2];
            for (int k = 0; k < 2; ++k)
                index[k] = iq1_index(g, L + 8 * k, xb + 8 * k, weight + 8 * k, scale, iq1m_xx(bk, k), &off);
            if (off) {
                float sumqx = 0, sumq2 = 0;
                for (int k = 0; k < 2; ++k) {
                    const float *xx = iq1m_xx(bk, k);
                    const int8_t *pg = g->pos + 8 * index[k];
                    for (int j = 0; j < 8; ++j) {
                        float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
            }
            y[ibl].qs[2 * ib] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale, shifts[ib] = (int8_t)bk;
            max_scale = Q_MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        uint16_t sc[4] = {0};
        float d = max_scale / 15;
        const float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int ib = 0; ib < QK_K / BS; ++ib) {
            int l = q_nearest_int(0.5f * (id * scales[ib] - 1));
            l = Q_MAX(0, Q_MIN(7, l));
            sc[ib / 4] = (uint16_t)(sc[ib / 4] | l << 3 * (ib % 4));
            y[ibl].qh[ib] |= MASKS[shifts[ib]];
            const float *xb = xbl + BS * ib;
            iq1_weights(xb, qwb ? qwb + BS * ib : NULL, sigma2, BS, weight);
            for (int k = 0; k < 2; ++k) {
                const float *xx = iq1m_xx(shifts[ib], k);
                const int8_t *pg = g->pos + 8 * (y[ibl].qs[2 * ib + k] + ((y[ibl].qh[ib] << (8 - 4 * k)) & 0x700));
                for (int j = 0; j < 8; ++j) {
                    float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
        }
        if (sumq2 > 0) d = sumqx / sumq2;
        const uint16_t s = f2h(d * 1.1125f);
        sc[0] = (uint16_t)(sc[0] | (s & 0x000f) << 12);
        sc[1] = (uint16_t)(sc[1] | (s & 0x00f0) << 8);
        sc[2] = (uint16_t)(sc[2] | (s & 0x0f00) << 4);
        sc[3] = (uint16_t)(sc[3] | (s & 0xf000));
        memcpy(y[ibl].scales, sc, sizeof sc);
    }
}

void q_dequantize_iq1_s(const void *vx, float *y, int64_t n) {
    const block_iq1_s *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_1S);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4) {
            const uint16_t qh = x[i].qh[ib];
            const float dl = d * (2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
            for (int l = 0; l < 4; ++l, y += 8) {
                const int8_t *v = g->deq + 8 * (qs[l] | (((qh >> 3 * l) & 7) << 8));
                for (int j = 0; j < 8; ++j) y[j] = dl * (v[j] + delta);
            }
        }
    }
}

void q_dequantize_iq1_m(const void *vx, float *y, int64_t n) {
    const block_iq1_m *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_1S);
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t sc[4];
        memcpy(sc, x[i].scales, sizeof sc);
        const uint16_t s = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = h2f(s);
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, qh += 2) {
            const float dl[2] = {d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1),
                                 d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1)};
            const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                                qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
            const float delta[4] = {qh[0] & 0x08 ? -IQ1_DELTA : IQ1_DELTA, qh[0] & 0x80 ? -IQ1_DELTA : IQ1_DELTA,
                                    qh[1] & 0x08 ? -IQ1_DELTA : IQ1_DELTA, qh[1] & 0x80 ? -IQ1_DELTA : IQ1_DELTA};
            for (int l = 0; l < 4; ++l, y += 8) {
                const int8_t *v = g->deq + 8 * idx[l];
                for (int j = 0; j < 8; ++j) y[j] = dl[l / 2] * (v[j] + delta[l]);
            }
        }
    }
}

/* q_iq_deq.c - dequantization of the lattice i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ1_S, IQ1_M), in ggml's arithmetic order. Grid values come from iq_grids.c. */
#include "quantize/codec_internal.h"
#include "quantize/iq_grids.h"

/* The 7 stored sign bits of the parity types, completed with the even-parity eighth. */
static uint8_t parity_signs(uint32_t s7) {
    s7 &= 127;
    return (uint8_t)(s7 | (uint32_t)(__builtin_popcount(s7) & 1) << 7);
}

/* 8 values of grid point gi times dl, with sign bits `signs` (bit j: value j negative). */
static void put8(const q_iq_grid *g, int gi, float dl, uint8_t signs, float *y) {
    const int8_t *v = g->deq + 8 * gi;
    for (int j = 0; j < 8; ++j) y[j] = dl * (uint8_t)v[j] * (signs & (1u << j) ? -1.f : 1.f);
}

/* 4 values (IQ3 grids) with sign bits from `signs` starting at bit `first`. */
static void put4(const q_iq_grid *g, int gi, float dl, uint8_t signs, int first, float *y) {
    const int8_t *v = g->deq + 8 * gi;
    for (int j = 0; j < 4; ++j) y[j] = dl * (uint8_t)v[j] * (signs & (1u << (first + j)) ? -1.f : 1.f);
}

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

void q_dequantize_iq2_xxs(const void *vx, float *y, int64_t n) {
    const block_iq2_xxs *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_2XXS);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = (const uint8_t *)x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8) {
            const uint32_t a1 = rd32(qs + 4);
            const float db = d * (0.5f + (a1 >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) put8(g, qs[l], db, parity_signs(a1 >> 7 * l), y);
        }
    }
}

void q_dequantize_iq2_xs(const void *vx, float *y, int64_t n) {
    const block_iq2_xs *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_2XS);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            const float db[2] = {d * (0.5f + (x[i].scales[ib] & 0xf)) * 0.25f, d * (0.5f + (x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = x[i].qs[4 * ib + l];
                put8(g, q & 511, db[l / 2], parity_signs(q >> 9), y);
            }
        }
    }
}

void q_dequantize_iq2_s(const void *vx, float *y, int64_t n) {
    const block_iq2_s *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_2S);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = qs + QK_K / 8;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (x[i].scales[ib] & 0xf)) * 0.25f, d * (0.5f + (x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8)
                put8(g, qs[l] | ((x[i].qh[ib] << (8 - 2 * l)) & 0x300), db[l / 2], signs[l], y);
        }
    }
}

void q_dequantize_iq3_xxs(const void *vx, float *y, int64_t n) {
    const block_iq3_xxs *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_3XXS);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = x[i].qs, *sas = x[i].qs + QK_K / 4;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8) {
            const uint32_t a = rd32(sas + 4 * ib);
            const float db = d * (0.5f + (a >> 28)) * 0.5f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t signs = parity_signs(a >> 7 * l);
                put4(g, qs[2 * l], db, signs, 0, y);
                put4(g, qs[2 * l + 1], db, signs, 4, y + 4);
            }
        }
    }
}

void q_dequantize_iq3_s(const void *vx, float *y, int64_t n) {
    const block_iq3_s *x = vx;
    const q_iq_grid *g = q_iq_grid_get(Q_IQ_GRID_3S);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = x[i].signs;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8, signs += 4) {
            const uint8_t sc = x[i].scales[ib / 2];
            const float db = d * (1 + 2 * (ib % 2 ? sc >> 4 : sc & 0xf));
            const uint8_t qh = x[i].qh[ib];
            for (int l = 0; l < 4; ++l, y += 8) {
                put4(g, qs[2 * l] | ((qh << (8 - 2 * l)) & 256), db, signs[l], 0, y);
                put4(g, qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256), db, signs[l], 4, y + 4);
            }
        }
    }
}

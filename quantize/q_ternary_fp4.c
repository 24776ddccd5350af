/* q_ternary_fp4.c - the ternary types TQ1_0 / TQ2_0 (BitNet b1.58, TriLMs) and MXFP4
 * (OCP microscaling: 32 E2M1 values sharing an E8M0 power-of-two scale), scalar.
 *
 * None of them reads importance weights (ggml's quantizers ignore them). TQ1_0 packs five
 * trits per byte as a fixed-point fraction of 3^5 (so a byte times 3^n, times 3, >> 8 gives
 * trit n); TQ2_0 stores two bits per trit. MXFP4's scale is 2^(floor(log2 amax) - 2). */
#include "quantize/codec_internal.h"

#include <math.h>

/* ggml's kvalues_mxfp4: twice the E2M1 values, hence the halved scale below. */
static const int8_t MXFP4_VALUES[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static float ternary_scale(const float *x, uint16_t *d) {
    float amax = 0.0f;
    for (int j = 0; j < QK_K; j++) amax = Q_MAX(amax, fabsf(x[j]));
    *d = f2h(amax);
    return amax ? 1.0f / amax : 0.0f;
}

/* One trit in 0..2 from x * id (ggml rounds half away from zero). */
static int trit(float v) { return (int)lroundf(v) + 1; }

/* Five (or four, then shifted up one) trits, most significant first, as ceil(q * 256 / 243). */
static uint8_t pack_trits(const float *x, int stride, int n, float id) {
    uint8_t q = 0;
    for (int k = 0; k < n; k++) q = (uint8_t)(q * 3 + trit(x[k * stride] * id));
    if (n == 4) q = (uint8_t)(q * 3);
    return (uint8_t)(((uint16_t)q * 256 + 242) / 243);
}

void q_quantize_tq1_0(const float *x, void *vy, int64_t n, const float *imatrix) {
    (void)imatrix;
    block_tq1_0 *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float id = ternary_scale(x, &y[i].d);
        const float *p = x;
        for (int m = 0; m < 32; m++) y[i].qs[m] = pack_trits(p + m, 32, 5, id); /* 160 values */
        p += 160;
        for (int m = 0; m < 16; m++) y[i].qs[32 + m] = pack_trits(p + m, 16, 5, id); /* 80 values */
        p += 80;
        for (int j = 0; j < 4; j++) y[i].qh[j] = pack_trits(p + j, 4, 4, id); /* the last 16 */
    }
}

void q_quantize_tq2_0(const float *x, void *vy, int64_t n, const float *imatrix) {
    (void)imatrix;
    block_tq2_0 *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float id = ternary_scale(x + i * QK_K, &y[i].d);
        for (int j = 0; j < QK_K / 4; j += 32) {
            const float *p = x + i * QK_K + 4 * j;
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int k = 0; k < 4; k++) q = (uint8_t)(q | (trit(p[m + 32 * k] * id) & 3) << 2 * k);
                y[i].qs[j + m] = q;
            }
        }
    }
}

/* Trit k (0 most significant) of a TQ1_0 byte, as -1, 0, 1. */
static float tq1_trit(uint8_t b, int k) {
    static const uint8_t POW3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(b * POW3[k]);
    return (float)((((uint16_t)q * 3) >> 8) - 1);
}

void q_dequantize_tq1_0(const void *vx, float *y, int64_t n) {
    const block_tq1_0 *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++) *y++ = tq1_trit(x[i].qs[m], k) * d;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++) *y++ = tq1_trit(x[i].qs[32 + m], k) * d;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) *y++ = tq1_trit(x[i].qh[j], k) * d;
    }
}

void q_dequantize_tq2_0(const void *vx, float *y, int64_t n) {
    const block_tq2_0 *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK_K / 4; j += 32)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++) *y++ = (float)(((x[i].qs[j + m] >> 2 * k) & 3) - 1) * d;
    }
}

/* E8M0 exponent e as 2^(e - 128): half the scale, matching the doubled levels. */
static float e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint8_t mxfp4_index(float x, float d) {
    int best = 0;
    float best_err = fabsf(MXFP4_VALUES[0] * d - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf(MXFP4_VALUES[i] * d - x);
        if (err < best_err) { best = i; best_err = err; }
    }
    return (uint8_t)best;
}

void q_quantize_mxfp4(const float *x, void *vy, int64_t n, const float *imatrix) {
    (void)imatrix;
    block_mxfp4 *y = vy;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float amax = 0.0f;
        for (int j = 0; j < QK32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]);
        /* ggml converts the float exponent to uint8_t directly (x86: through int32) */
        const uint8_t e = amax > 0.0f ? (uint8_t)(int32_t)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = e8m0_half(e);
        y[i].e = e;
        for (int j = 0; j < QK32 / 2; j++)
            y[i].qs[j] = (uint8_t)(mxfp4_index(x[j], d) | mxfp4_index(x[j + QK32 / 2], d) << 4);
    }
}

void q_dequantize_mxfp4(const void *vx, float *y, int64_t n) {
    const block_mxfp4 *x = vx;
    for (int64_t i = 0; i < n / QK32; i++, y += QK32) {
        const float d = e8m0_half(x[i].e);
        for (int j = 0; j < QK32 / 2; j++) {
            y[j] = MXFP4_VALUES[x[i].qs[j] & 0xf] * d;
            y[j + QK32 / 2] = MXFP4_VALUES[x[i].qs[j] >> 4] * d;
        }
    }
}

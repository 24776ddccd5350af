/* matmul_scalar.c - portable C variant of the matrix kernels (see kernels_internal.h). */
#include "kernels_internal.h"

#include <math.h>
#include <string.h>

#define MR 4
#define TPW 4

static void tile(int mr, const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t kb, int valid, float *y,
                 int64_t ldy, bool first) {
    float acc[MR][TPW];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < valid; j++) acc[r][j] = first ? 0.0f : y[r * ldy + j];
    for (int64_t k = 0; k < kb; k++) {
        const float *xk = x + k * ldx;
        for (int r = 0; r < mr; r++) {
            const float b = w[r * ldw + k];
            for (int j = 0; j < valid; j++) acc[r][j] += b * xk[j];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < valid; j++) y[r * ldy + j] = acc[r][j];
}

static float dot(const float *a, const float *b, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) s[j] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static float dot_half(const void *a, const float *b, int64_t n, bool bf16) {
    const unsigned char *p = a;
    float s[8] = {0};
    int64_t i = 0;
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        s[i % 8] += (bf16 ? sm_bf16_to_f32(h) : sm_f16_to_f32(h)) * b[i];
    }
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static float dot_f16(const void *a, const float *b, int64_t n) { return dot_half(a, b, n, false); }
static float dot_bf16(const void *a, const float *b, int64_t n) { return dot_half(a, b, n, true); }

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = sm_f16_to_f32(h);
    }
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = sm_bf16_to_f32(h);
    }
}

static void vexp(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = expf(x[i]);
}

static void silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

const sm_gemm_isa sm_gemm_scalar = {MR, TPW, tile, dot, dot_f16, dot_bf16, f16_to_f32, bf16_to_f32, vexp, silu_mul, NULL, NULL, sm_qdot8_scalar};

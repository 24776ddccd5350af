/* matmul_avx512.c - AVX-512 variant of the matrix kernels (see kernels_internal.h):
 * register tiles of 6 weight rows x 64 tokens (24 accumulators). */
#include "kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define TPW 64

static inline __attribute__((always_inline)) void tile_n(const int mr, const float *w, int64_t ldw,
                                                         const float *xt, int64_t kb, float *c, bool first) {
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * TPW + 16 * v);
    for (int64_t k = 0; k < kb; k++) {
        const float *xk = xt + k * TPW;
        const __m512 x0 = _mm512_load_ps(xk), x1 = _mm512_load_ps(xk + 16);
        const __m512 x2 = _mm512_load_ps(xk + 32), x3 = _mm512_load_ps(xk + 48);
        for (int r = 0; r < mr; r++) {
            const __m512 b = _mm512_set1_ps(w[r * ldw + k]);
            acc[r][0] = _mm512_fmadd_ps(b, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(b, x1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(b, x2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(b, x3, acc[r][3]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(c + r * TPW + 16 * v, acc[r][v]);
}

static void tile(int mr, const float *w, int64_t ldw, const float *xt, int64_t kb, float *c, bool first) {
    switch (mr) {
    case 1: tile_n(1, w, ldw, xt, kb, c, first); break;
    case 2: tile_n(2, w, ldw, xt, kb, c, first); break;
    case 3: tile_n(3, w, ldw, xt, kb, c, first); break;
    case 4: tile_n(4, w, ldw, xt, kb, c, first); break;
    case 5: tile_n(5, w, ldw, xt, kb, c, first); break;
    default: tile_n(6, w, ldw, xt, kb, c, first); break;
    }
}

static float dot(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    if (i + 16 <= n) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        i += 16;
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + 2 * i))));
    for (; i < n; i++) dst[i] = sm_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + 2 * i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = sm_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

const sm_gemm_isa sm_gemm_avx512 = {MR, TPW, tile, dot, f16_to_f32, bf16_to_f32};

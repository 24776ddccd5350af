/* matmul_avx2.c - AVX2+FMA variant of the matrix kernels (see kernels_internal.h):
 * register tiles of 6 weight rows x 16 tokens (12 accumulators). */
#include "kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define TPW 16

static inline __attribute__((always_inline)) void tile_n(const int mr, const float *w, int64_t ldw,
                                                         const float *xt, int64_t kb, float *c, bool first) {
    __m256 acc[MR][2];
    for (int r = 0; r < mr; r++) {
        acc[r][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * TPW);
        acc[r][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * TPW + 8);
    }
    for (int64_t k = 0; k < kb; k++) {
        const __m256 x0 = _mm256_load_ps(xt + k * TPW), x1 = _mm256_load_ps(xt + k * TPW + 8);
        for (int r = 0; r < mr; r++) {
            const __m256 b = _mm256_broadcast_ss(w + r * ldw + k);
            acc[r][0] = _mm256_fmadd_ps(b, x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(b, x1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm256_storeu_ps(c + r * TPW, acc[r][0]);
        _mm256_storeu_ps(c + r * TPW + 8, acc[r][1]);
    }
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

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= n) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    float tail = 0.0f;
    for (; i < n; i++) tail = __builtin_fmaf(a[i], b[i], tail);
    return hsum(_mm256_add_ps(s0, s1)) + tail;
}

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
    for (; i < n; i++) dst[i] = sm_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = sm_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

const sm_gemm_isa sm_gemm_avx2 = {MR, TPW, tile, dot, f16_to_f32, bf16_to_f32};

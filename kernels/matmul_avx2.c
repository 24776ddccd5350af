/* matmul_avx2.c - AVX2+FMA variant of the matrix kernels (see kernels_internal.h):
 * register tiles of 6 weight rows x 16 tokens (12 accumulators). */
#include "kernels_internal.h"

#include <immintrin.h>
#include <string.h>

#define MR 6
#define TPW 16

/* full: all 16 tokens valid (plain loads); otherwise masked loads and stores */
static inline __attribute__((always_inline)) void tile_n(const int mr, const bool full, const float *w, int64_t ldw,
                                                         const float *x, int64_t ldx, int64_t kb, int valid, float *y,
                                                         int64_t ldy, bool first) {
    __m256i m0 = _mm256_setzero_si256(), m1 = _mm256_setzero_si256();
    if (!full) {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), idx);
        m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid - 8), idx);
    }
#define LD(p, m) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m))
    __m256 acc[MR][2];
    for (int r = 0; r < mr; r++) {
        acc[r][0] = first ? _mm256_setzero_ps() : LD(y + r * ldy, m0);
        acc[r][1] = first ? _mm256_setzero_ps() : LD(y + r * ldy + 8, m1);
    }
    for (int64_t k = 0; k < kb; k++) {
        const __m256 x0 = LD(x + k * ldx, m0), x1 = LD(x + k * ldx + 8, m1);
        for (int r = 0; r < mr; r++) {
            const __m256 b = _mm256_broadcast_ss(w + r * ldw + k);
            acc[r][0] = _mm256_fmadd_ps(b, x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(b, x1, acc[r][1]);
        }
    }
#undef LD
    for (int r = 0; r < mr; r++) {
        if (full) {
            _mm256_storeu_ps(y + r * ldy, acc[r][0]);
            _mm256_storeu_ps(y + r * ldy + 8, acc[r][1]);
        } else {
            _mm256_maskstore_ps(y + r * ldy, m0, acc[r][0]);
            _mm256_maskstore_ps(y + r * ldy + 8, m1, acc[r][1]);
        }
    }
}

static void tile(int mr, const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t kb, int valid, float *y,
                 int64_t ldy, bool first) {
#define CASE(n)                                                                           \
    case n:                                                                               \
        if (valid == TPW) tile_n(n, true, w, ldw, x, ldx, kb, valid, y, ldy, first);      \
        else tile_n(n, false, w, ldw, x, ldx, kb, valid, y, ldy, first);                  \
        break;
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5)
    default:
        CASE(6)
    }
#undef CASE
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lanes [0, left) set (left < 8): a partial vector's loads and stores */
static inline __m256i tail_mask(int64_t left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Group g of 8 elements goes to accumulator g % 2, a last partial group as a masked (zero-
 * filled) vector: the sum is the one a zero-padded array gives, whatever n is. */
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
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        const __m256 p = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), (i & 8) ? s1 : s0);
        if (i & 8) s1 = p;
        else s0 = p;
    }
    return hsum(_mm256_add_ps(s0, s1));
}

static inline __m256 ld_f16(const unsigned char *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 ld_bf16(const unsigned char *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* like dot; the last partial group's halves are copied into a zero-filled vector */
#define DOT_HALF(name, load)                                                                \
    static float name(const void *a, const float *b, int64_t n) {                          \
        const unsigned char *p = a;                                                         \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                          \
        int64_t i = 0;                                                                      \
        for (; i + 16 <= n; i += 16) {                                                      \
            s0 = _mm256_fmadd_ps(load(p + 2 * i), _mm256_loadu_ps(b + i), s0);              \
            s1 = _mm256_fmadd_ps(load(p + 2 * i + 16), _mm256_loadu_ps(b + i + 8), s1);     \
        }                                                                                   \
        if (i + 8 <= n) {                                                                   \
            s0 = _mm256_fmadd_ps(load(p + 2 * i), _mm256_loadu_ps(b + i), s0);              \
            i += 8;                                                                         \
        }                                                                                   \
        if (i < n) {                                                                        \
            unsigned char h[16] = {0};                                                      \
            memcpy(h, p + 2 * i, (size_t)(2 * (n - i)));                                    \
            const __m256 v = _mm256_fmadd_ps(load(h), _mm256_maskload_ps(b + i, tail_mask(n - i)), (i & 8) ? s1 : s0); \
            if (i & 8) s1 = v;                                                              \
            else s0 = v;                                                                    \
        }                                                                                   \
        return hsum(_mm256_add_ps(s0, s1));                                                 \
    }
DOT_HALF(dot_f16, ld_f16)
DOT_HALF(dot_bf16, ld_bf16)
#undef DOT_HALF

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, ld_f16(s + 2 * i));
    if (i < n) {
        unsigned char h[16] = {0};
        memcpy(h, s + 2 * i, (size_t)(2 * (n - i)));
        _mm256_maskstore_ps(dst + i, tail_mask(n - i), ld_f16(h));
    }
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld_bf16(s + 2 * i));
    if (i < n) {
        unsigned char h[16] = {0};
        memcpy(h, s + 2 * i, (size_t)(2 * (n - i)));
        _mm256_maskstore_ps(dst + i, tail_mask(n - i), ld_bf16(h));
    }
}

/* exp(x): Cephes' reduction x = n*ln2 + r (ln2 split in two), a degree-6 polynomial for
 * e^r on [-ln2/2, ln2/2], 2^n built in the exponent field (x is clamped so that n stays a
 * normal exponent: results below 1.2e-38 come out as that, not 0). */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.37626f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* The last n % 8 elements go through the same vector code, masked: an element's bits do
 * not depend on its position or on n. */
static void vexp(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(x + i, m, exp8(_mm256_maskload_ps(x + i, m)));
    }
}

static inline __m256 silu_mul8(__m256 g, __m256 u) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void silu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, silu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(g + i, m, silu_mul8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m)));
    }
}

const sm_gemm_isa sm_gemm_avx2 = {MR, TPW, tile, dot, dot_f16, dot_bf16, f16_to_f32, bf16_to_f32, vexp, silu_mul, sm_dequant_avx2, sm_qdot_avx2, sm_qdot8_avx2};

/* matmul_avx512.c - AVX-512 variant of the matrix kernels (see kernels_internal.h):
 * register tiles of 6 weight rows x 64 tokens (24 accumulators). */
#include "kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define TPW 64

/* full: all 64 tokens valid (plain loads); otherwise masked loads and stores */
static inline __attribute__((always_inline)) void tile_n(const int mr, const bool full, const float *w, int64_t ldw,
                                                         const float *x, int64_t ldx, int64_t kb, int valid, float *y,
                                                         int64_t ldy, bool first) {
    __mmask16 mk[4] = {0xffff, 0xffff, 0xffff, 0xffff};
    if (!full)
        for (int v = 0; v < 4; v++) {
            const int left = valid - 16 * v;
            mk[v] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        }
#define LD(p, v) (full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mk[v], p))
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = first ? _mm512_setzero_ps() : LD(y + r * ldy + 16 * v, v);
    for (int64_t k = 0; k < kb; k++) {
        const float *xk = x + k * ldx;
        const __m512 x0 = LD(xk, 0), x1 = LD(xk + 16, 1), x2 = LD(xk + 32, 2), x3 = LD(xk + 48, 3);
        for (int r = 0; r < mr; r++) {
            const __m512 b = _mm512_set1_ps(w[r * ldw + k]);
            acc[r][0] = _mm512_fmadd_ps(b, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(b, x1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(b, x2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(b, x3, acc[r][3]);
        }
    }
#undef LD
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) {
            if (full) _mm512_storeu_ps(y + r * ldy + 16 * v, acc[r][v]);
            else _mm512_mask_storeu_ps(y + r * ldy + 16 * v, mk[v], acc[r][v]);
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
    /* group g of 16 goes to accumulator g % 2, a partial one masked (zero-filled): the sum
     * is the one a zero-padded array gives, whatever n is */
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 p = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), (i & 16) ? s1 : s0);
        if (i & 16) s1 = p;
        else s0 = p;
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static inline __m512 ld_f16(const unsigned char *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 ld_bf16(const unsigned char *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline __m512 ld_f16_m(const unsigned char *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
static inline __m512 ld_bf16_m(const unsigned char *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

#define DOT_HALF(name, load, load_m)                                                        \
    static float name(const void *a, const float *b, int64_t n) {                           \
        const unsigned char *p = a;                                                         \
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                          \
        int64_t i = 0;                                                                      \
        for (; i + 32 <= n; i += 32) {                                                      \
            s0 = _mm512_fmadd_ps(load(p + 2 * i), _mm512_loadu_ps(b + i), s0);              \
            s1 = _mm512_fmadd_ps(load(p + 2 * i + 32), _mm512_loadu_ps(b + i + 16), s1);    \
        }                                                                                   \
        if (i + 16 <= n) {                                                                  \
            s0 = _mm512_fmadd_ps(load(p + 2 * i), _mm512_loadu_ps(b + i), s0);              \
            i += 16;                                                                        \
        }                                                                                   \
        if (i < n) {                                                                        \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                           \
            const __m512 v = _mm512_fmadd_ps(load_m(p + 2 * i, m), _mm512_maskz_loadu_ps(m, b + i), (i & 16) ? s1 : s0); \
            if (i & 16) s1 = v;                                                             \
            else s0 = v;                                                                    \
        }                                                                                   \
        return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));                                 \
    }
DOT_HALF(dot_f16, ld_f16, ld_f16_m)
DOT_HALF(dot_bf16, ld_bf16, ld_bf16_m)
#undef DOT_HALF

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, ld_f16(s + 2 * i));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, ld_f16_m(s + 2 * i, m));
    }
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const unsigned char *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld_bf16(s + 2 * i));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, ld_bf16_m(s + 2 * i, m));
    }
}

/* exp(x): Cephes' reduction x = n*ln2 + r (ln2 split in two), a degree-6 polynomial for
 * e^r on [-ln2/2, ln2/2], and scalef for 2^n (which underflows to 0 and overflows to inf
 * like expf). Within 2 ulp of expf. */
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    return _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.0f)), n);
}

static void vexp(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static inline __m512 silu_mul16(__m512 g, __m512 u) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

static void silu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, silu_mul16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(g + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

const sm_gemm_isa sm_gemm_avx512 = {MR, TPW, tile, dot, dot_f16, dot_bf16, f16_to_f32, bf16_to_f32, vexp, silu_mul, sm_dequant_avx512, sm_qdot_avx512, sm_qdot8_avx512};

/* dequant_impl.h - vectorised dequantizers for the block types the runtime meets most (Q8_0,
 * Q4_0, Q4_K, Q6_K), 8 lanes of AVX2, included by dequant_avx2.c and dequant_avx512.c (each
 * compiled with its ISA's flags; the AVX-512 build gets EVEX encodings and wider registers
 * where the compiler sees fit). Define DEQUANT_FN to the function's name before including.
 *
 * Every value is the one quantize/'s scalar dequantizer (ggml's formula) gives, bit for bit:
 * the same float operations in the same order (products of exactly converted integers with
 * the block scales, no fused multiply-adds: the project compiles as ISO C, which does not
 * contract), so which ISA dequantized a row never shows in a result. Block layouts are
 * ggml's (byte offsets below). */
#include <immintrin.h>
#include <string.h>

#include "core/core.h"

static inline float dq_h2f(const unsigned char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return sm_f16_to_f32(h);
}

/* 8 bytes at p as 32-bit integers (zero- or sign-extended) */
static inline __m256i dq_u8(const unsigned char *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline __m256i dq_i8(const unsigned char *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* Q8_0: 34-byte blocks of 32 (f16 d, int8 qs[32]): y = q * d */
static void dq_q8_0(const unsigned char *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        const __m256 d = _mm256_set1_ps(dq_h2f(b));
        for (int j = 0; j < 32; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(dq_i8(b + 2 + j)), d));
    }
}

/* Q4_0: 18-byte blocks of 32 (f16 d, qs[16]): y[j] = ((qs[j] & 15) - 8) * d, y[j+16] = ((qs[j] >> 4) - 8) * d */
static void dq_q4_0(const unsigned char *b, float *y, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        const __m256 d = _mm256_set1_ps(dq_h2f(b));
        for (int j = 0; j < 16; j += 8) {
            const __m256i q = dq_u8(b + 2 + j);
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(q, lo), eight)), d));
            _mm256_storeu_ps(y + j + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(q, 4), eight)), d));
        }
    }
}

/* ggml's get_scale_min_k4 */
static inline void dq_scale_min_k4(int j, const unsigned char *q, float *sc, float *m) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *m = (float)(q[j + 4] & 63);
    } else {
        *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: 144-byte superblocks of 256 (f16 d, f16 dmin, scales[12], qs[128]); 64 values per 32
 * bytes of qs: y = (d*sc) * (q & 15) - dmin*m, then (d*sc') * (q >> 4) - dmin*m' */
static void dq_q4_K(const unsigned char *b, float *y, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = dq_h2f(b), min = dq_h2f(b + 2);
        const unsigned char *sc = b + 4, *q = b + 16;
        for (int is = 0; is < 8; is += 2, q += 32, y += 64) {
            float s1, m1, s2, m2;
            dq_scale_min_k4(is, sc, &s1, &m1);
            dq_scale_min_k4(is + 1, sc, &s2, &m2);
            const __m256 d1 = _mm256_set1_ps(d * s1), n1 = _mm256_set1_ps(min * m1);
            const __m256 d2 = _mm256_set1_ps(d * s2), n2 = _mm256_set1_ps(min * m2);
            for (int l = 0; l < 32; l += 8) {
                const __m256i v = dq_u8(q + l);
                _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_and_si256(v, lo))), n1));
                _mm256_storeu_ps(y + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4))), n2));
            }
        }
    }
}

/* Q6_K: 210-byte superblocks of 256 (ql[128], qh[64], int8 scales[16], f16 d); per 128 values
 * (64 of ql, 32 of qh, 8 scales): y[l + 32k] = (d * sc[l/16 + 2k]) * q_k[l] */
static void dq_q6_K(const unsigned char *b, float *y, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15), three = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const float d = dq_h2f(b + 208);
        const unsigned char *ql = b, *qh = b + 128;
        const signed char *sc = (const signed char *)(b + 192);
        for (int k = 0; k < 256; k += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l += 8) {
                const int is = l / 16;
                const __m256i a = dq_u8(ql + l), c = dq_u8(ql + l + 32), h = dq_u8(qh + l);
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(a, lo), _mm256_slli_epi32(_mm256_and_si256(h, three), 4));
                const __m256i q2 = _mm256_or_si256(_mm256_and_si256(c, lo),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), three), 4));
                const __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a, 4),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), three), 4));
                const __m256i q4 = _mm256_or_si256(_mm256_srli_epi32(c, 4),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 6), three), 4));
#define DQ6(qv, o, s) \
    _mm256_storeu_ps(y + l + (o), _mm256_mul_ps(_mm256_set1_ps(d * (float)sc[is + (s)]), _mm256_cvtepi32_ps(_mm256_sub_epi32(qv, off))))
                DQ6(q1, 0, 0);
                DQ6(q2, 32, 2);
                DQ6(q3, 64, 4);
                DQ6(q4, 96, 6);
#undef DQ6
            }
    }
}

/* 0 if `type` was dequantized (n a whole number of blocks: the caller checked), 1 if this
 * ISA has no vector form for it (the caller falls back to the codec's dequantizer). */
int DEQUANT_FN(sm_type type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case SM_TYPE_Q8_0: dq_q8_0(src, dst, n / 32); return 0;
    case SM_TYPE_Q4_0: dq_q4_0(src, dst, n / 32); return 0;
    case SM_TYPE_Q4_K: dq_q4_K(src, dst, n / 256); return 0;
    case SM_TYPE_Q6_K: dq_q6_K(src, dst, n / 256); return 0;
    default: return 1;
    }
}

/* dequant_impl.h - vectorised dequantizers for the block types the runtime meets most (Q8_0,
 * Q4_0, Q4_K, Q6_K), 8 lanes of AVX2, included by dequant_avx2.c and dequant_avx512.c (each
 * compiled with its ISA's flags). Each one either stores the row as floats (DEQUANT_FN) or
 * takes its dot product with a float vector without storing it (QDOT_FN: generation's
 * matrix-vector products). Before including, define DEQUANT_FN, QDOT_FN, DOT_SLOT(o) (the
 * accumulator, of 4, that the 8 values at element o go to) and DOT_REDUCE(acc) (their sum):
 * chosen so that the dot product is bit for bit the ISA's float dot of the dequantized row
 * (matmul_avx2.c / matmul_avx512.c: groups of its vector width alternate between two
 * accumulators, lane-wise fused multiply-adds, one final reduction), so fusing changes no
 * result.
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

/* Where the 8 values at element o go: stored (mode 0) or multiplied into the dot (mode 1). */
typedef struct dq_sink { float *y; const float *x; __m256 acc[4]; } dq_sink;

static inline __attribute__((always_inline)) void dq_put(const int mode, dq_sink *s, int64_t o, __m256 v) {
    if (mode == 0) _mm256_storeu_ps(s->y + o, v);
    else s->acc[DOT_SLOT(o)] = _mm256_fmadd_ps(v, _mm256_loadu_ps(s->x + o), s->acc[DOT_SLOT(o)]);
}

/* Q8_0: 34-byte blocks of 32 (f16 d, int8 qs[32]): y = q * d */
static inline __attribute__((always_inline)) void dq_q8_0(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34) {
        const __m256 d = _mm256_set1_ps(dq_h2f(b));
        for (int j = 0; j < 32; j += 8) dq_put(mode, s, 32 * i + j, _mm256_mul_ps(_mm256_cvtepi32_ps(dq_i8(b + 2 + j)), d));
    }
}

/* Q4_0: 18-byte blocks of 32 (f16 d, qs[16]): y[j] = ((qs[j] & 15) - 8) * d, y[j+16] = ((qs[j] >> 4) - 8) * d */
static inline __attribute__((always_inline)) void dq_q4_0(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    for (int64_t i = 0; i < nb; i++, b += 18) {
        const __m256 d = _mm256_set1_ps(dq_h2f(b));
        for (int j = 0; j < 16; j += 8) {
            const __m256i q = dq_u8(b + 2 + j);
            dq_put(mode, s, 32 * i + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(q, lo), eight)), d));
            dq_put(mode, s, 32 * i + j + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(q, 4), eight)), d));
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
static inline __attribute__((always_inline)) void dq_q4_K(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = dq_h2f(b), min = dq_h2f(b + 2);
        const unsigned char *sc = b + 4, *q = b + 16;
        for (int is = 0; is < 8; is += 2, q += 32) {
            float s1, m1, s2, m2;
            dq_scale_min_k4(is, sc, &s1, &m1);
            dq_scale_min_k4(is + 1, sc, &s2, &m2);
            const __m256 d1 = _mm256_set1_ps(d * s1), n1 = _mm256_set1_ps(min * m1);
            const __m256 d2 = _mm256_set1_ps(d * s2), n2 = _mm256_set1_ps(min * m2);
            const int64_t o = 256 * i + 32 * is;
            /* in element order (a dot's accumulators must see their groups in order) */
            for (int l = 0; l < 32; l += 8)
                dq_put(mode, s, o + l, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_and_si256(dq_u8(q + l), lo))), n1));
            for (int l = 0; l < 32; l += 8)
                dq_put(mode, s, o + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, _mm256_cvtepi32_ps(_mm256_srli_epi32(dq_u8(q + l), 4))), n2));
        }
    }
}

/* Q6_K: 210-byte superblocks of 256 (ql[128], qh[64], int8 scales[16], f16 d); per 128 values
 * (64 of ql, 32 of qh, 8 scales), quarter j (j < 4) of 32: y[32j + l] = (d * sc[l/16 + 2j]) * q,
 * q = (4 bits of ql[32 (j & 1) + l]: low for j < 2, high after) | (bits 2j, 2j+1 of qh[l]) << 4, minus 32 */
static inline __attribute__((always_inline)) void dq_q6_K(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const __m256i lo = _mm256_set1_epi32(15), three = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const float d = dq_h2f(b + 208);
        const unsigned char *ql = b, *qh = b + 128;
        const signed char *sc = (const signed char *)(b + 192);
        /* in element order (a dot's accumulators must see their groups in order) */
        for (int k = 0; k < 256; k += 128, ql += 64, qh += 32, sc += 8)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l += 8) {
                    const __m256i a = dq_u8(ql + 32 * (j & 1) + l), h = dq_u8(qh + l);
                    const __m256i lq = j < 2 ? _mm256_and_si256(a, lo) : _mm256_srli_epi32(a, 4);
                    const __m256i hq = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * j), three), 4);
                    const __m256 ds = _mm256_set1_ps(d * (float)sc[l / 16 + 2 * j]);
                    dq_put(mode, s, 256 * i + k + 32 * j + l,
                           _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_or_si256(lq, hq), off))));
                }
    }
}

/* Both modes: 0 if `type` was handled (n a whole number of blocks: the caller checked), 1 if
 * this ISA has no vector form for it. */
static inline __attribute__((always_inline)) int dq_run(const int mode, dq_sink *s, sm_type type, const void *src, int64_t n) {
    switch (type) {
    case SM_TYPE_Q8_0: dq_q8_0(mode, s, src, n / 32); return 0;
    case SM_TYPE_Q4_0: dq_q4_0(mode, s, src, n / 32); return 0;
    case SM_TYPE_Q4_K: dq_q4_K(mode, s, src, n / 256); return 0;
    case SM_TYPE_Q6_K: dq_q6_K(mode, s, src, n / 256); return 0;
    default: return 1;
    }
}

int DEQUANT_FN(sm_type type, const void *src, float *dst, int64_t n) {
    dq_sink s = {.y = dst};
    return dq_run(0, &s, type, src, n);
}

/* *out = the float dot product of the dequantized row with x (n elements). */
int QDOT_FN(sm_type type, const void *src, const float *x, int64_t n, float *out) {
    dq_sink s = {.x = x, .acc = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}};
    if (dq_run(1, &s, type, src, n)) return 1;
    *out = DOT_REDUCE(s.acc);
    return 0;
}

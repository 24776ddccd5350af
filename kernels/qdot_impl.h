/* qdot_impl.h - the integer dot products of kernels/qdot.c over 256-bit vectors, written once
 * and included by qdot_avx2.c (vpmaddubsw + vpmaddwd) and qdot_avx512vnni.c (vpdpbusd). The
 * including file defines QDOT8_FN (the name), QD_DP(acc, u, s): acc (8 x int32) += lane i: sum
 * over bytes 4i..4i+3 of u (unsigned, <= 128) * s (signed, |s| <= 127), and QD_DPS(acc, u, s,
 * sa, sb): the same times sa for lanes 0-3 and sb for lanes 4-7 (16-bit scales). Every integer is exact, and the float
 * parts are kernels_internal.h's (the same order as the portable form), so the results are
 * those of sm_qdot8_scalar bit for bit. */
#include <immintrin.h>
#include <string.h>

/* f16 -> f32 with F16C (exact, as sm_f16_to_f32), infinities and NaNs through sm_f16_to_f32 */
static inline float qd_h2f(const unsigned char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return (h & 0x7c00) == 0x7c00 ? sm_f16_to_f32(h) : _cvtsh_ss(h);
}

static inline int32_t qd_hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#define QD_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

/* Q4_0 and Q8_0 with Q8_0 activations: signed weights through the sign trick */
static float qd_q4_0_q8_0(sm_type t, const unsigned char *w, const sm_q8_0x *y, int64_t nb) {
    const size_t bs = t == SM_TYPE_Q8_0 ? 34 : 18;
    const __m256i lo = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += bs, y++) {
        __m256i q;
        if (t == SM_TYPE_Q8_0) {
            q = QD_LOAD(w + 2);
        } else {
            const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)(w + 2));
            q = _mm256_sub_epi8(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), lo), eight);
        }
        __m256i l = _mm256_setzero_si256();
        QD_DP(l, _mm256_sign_epi8(q, q), _mm256_sign_epi8(QD_LOAD(y->qs), q));
        const float d = qd_h2f(w) * y->d;
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(l), _mm256_set1_ps(d)));
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    return sm_qd_reduce8(a);
}

/* bit k of every byte of h, moved to bit 4 (k < 8) */
static inline __m256i qd_bit4(__m256i h, int k) {
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, k), _mm256_set1_epi8(1)), 4);
}

/* Q4_K and Q5_K with Q8_K activations */
static float qd_q45_K(sm_type t, const unsigned char *w, const sm_q8_Kx *y, int64_t nb) {
    const bool five = t == SM_TYPE_Q5_K;
    const __m256i lo = _mm256_set1_epi8(15);
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += five ? 176 : 144, y++) {
        int sc[8], m[8];
        sm_qd_scales_k4(w + 4, sc, m);
        const unsigned char *qs = w + (five ? 48 : 16);
        const __m256i qh = five ? QD_LOAD(w + 16) : _mm256_setzero_si256();
        __m256i s = _mm256_setzero_si256();
        int32_t msum = 0;
        for (int j = 0; j < 8; j += 2) {
            const __m256i raw = QD_LOAD(qs + 16 * j);
            __m256i a = _mm256_and_si256(raw, lo), c = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo);
            if (five) {
                a = _mm256_or_si256(a, qd_bit4(qh, j));
                c = _mm256_or_si256(c, qd_bit4(qh, j + 1));
            }
            QD_DPS(s, a, QD_LOAD(y->qs + 32 * j), sc[j], sc[j]);
            QD_DPS(s, c, QD_LOAD(y->qs + 32 * j + 32), sc[j + 1], sc[j + 1]);
            msum += m[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]) + m[j + 1] * (y->bsums[2 * j + 2] + y->bsums[2 * j + 3]);
        }
        acc = sm_qd_ksum(acc, qd_h2f(w) * y->d, qd_hsum(s), qd_h2f(w + 2) * y->d, msum);
    }
    return acc;
}

/* Q6_K with Q8_K activations: the 6-bit values unsigned, minus 32 x the scaled bsums */
static float qd_q6_K(const unsigned char *w, const sm_q8_Kx *y, int64_t nb) {
    const __m256i lo = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += 210, y++) {
        const signed char *sc = (const signed char *)(w + 192);
        __m256i s = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qh = QD_LOAD(w + 128 + 32 * h);
            for (int j = 0; j < 4; j++) {
                const __m256i a = QD_LOAD(w + 64 * h + 32 * (j & 1));
                const __m256i lq = j < 2 ? _mm256_and_si256(a, lo) : _mm256_and_si256(_mm256_srli_epi16(a, 4), lo);
                const __m256i hq = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), three), 4);
                QD_DPS(s, _mm256_or_si256(lq, hq), QD_LOAD(y->qs + 128 * h + 32 * j), sc[8 * h + 2 * j],
                       sc[8 * h + 2 * j + 1]);
            }
        }
        int32_t off = 0;
        for (int k = 0; k < 16; k++) off += sc[k] * y->bsums[k];
        acc = sm_qd_ksum(acc, qd_h2f(w + 208) * y->d, qd_hsum(s) - 32 * off, 0.0f, 0);
    }
    return acc;
}

float QDOT8_FN(sm_type type, const void *w, const void *xq, int64_t n) {
    SM_QDOT8_DISPATCH(type, w, xq, n, qd_q4_0_q8_0, qd_q6_K, qd_q45_K);
}

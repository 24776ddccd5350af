/* dequant_avx2.c - the vectorised dequantizers (dequant_impl.h) on 8 lanes of AVX2: the fused
 * dot is matmul_avx2.c's float dot (groups of 8 alternating between two accumulators, its
 * horizontal sum). */
#include "kernels_internal.h"

#include <immintrin.h>

#define DEQUANT_FN sm_dequant_avx2
#define QDOT_FN sm_qdot_avx2
#define VW 8
#define V __m256
#define VI __m256i
#define V_U8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define V_I8(p) _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define V_SET1 _mm256_set1_ps
#define V_SET1I _mm256_set1_epi32
#define V_MUL _mm256_mul_ps
#define V_SUB _mm256_sub_ps
#define V_CVT _mm256_cvtepi32_ps
#define V_SUBI _mm256_sub_epi32
#define V_AND _mm256_and_si256
#define V_OR _mm256_or_si256
#define V_SRLI _mm256_srli_epi32
#define V_SLLI _mm256_slli_epi32
#define V_STORE _mm256_storeu_ps
#define V_LOAD _mm256_loadu_ps
#define V_FMA _mm256_fmadd_ps
#define V_ZERO _mm256_setzero_ps()
static inline float dot_reduce(const __m256 *acc) {
    const __m256 v = _mm256_add_ps(acc[0], acc[1]); /* matmul_avx2.c's hsum */
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define DOT_REDUCE(acc) dot_reduce(acc)
#include "dequant_impl.h"

/* dequant_avx2.c - the vectorised dequantizers (dequant_impl.h) built for AVX2: the fused dot
 * is matmul_avx2.c's float dot (groups of 8 alternating between two accumulators). */
#include "kernels_internal.h"

#include <immintrin.h>

#define DEQUANT_FN sm_dequant_avx2
#define QDOT_FN sm_qdot_avx2
#define DOT_SLOT(o) ((int)(((o) >> 3) & 1))
static inline float dot_reduce(const __m256 *acc) {
    const __m256 v = _mm256_add_ps(acc[0], acc[1]); /* matmul_avx2.c's hsum */
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define DOT_REDUCE(acc) dot_reduce(acc)
#include "dequant_impl.h"

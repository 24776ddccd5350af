/* dequant_avx512.c - the vectorised dequantizers (dequant_impl.h) built for AVX-512: the fused
 * dot keeps matmul_avx512.c's two 16-lane accumulators as four 8-lane halves (slot 2g + h:
 * group parity g, half h; lane-wise the same fused multiply-adds) and reduces them the way
 * its dot does. */
#include "kernels_internal.h"

#include <immintrin.h>

#define DEQUANT_FN sm_dequant_avx512
#define QDOT_FN sm_qdot_avx512
#define DOT_SLOT(o) ((int)((((o) >> 4) & 1) * 2 + (((o) >> 3) & 1)))
static inline float dot_reduce(const __m256 *acc) {
    const __m512 s0 = _mm512_insertf32x8(_mm512_castps256_ps512(acc[0]), acc[1], 1);
    const __m512 s1 = _mm512_insertf32x8(_mm512_castps256_ps512(acc[2]), acc[3], 1);
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
#define DOT_REDUCE(acc) dot_reduce(acc)
#include "dequant_impl.h"

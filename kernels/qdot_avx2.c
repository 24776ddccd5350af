/* qdot_avx2.c - the integer dot products (qdot_impl.h) with AVX2: vpmaddubsw (u8 x s8 pairs to
 * int16, which cannot saturate at |u| <= 128, |s| <= 127) and vpmaddwd with the scales. */
#include "kernels_internal.h"

#include <immintrin.h>

#define QDOT8_FN sm_qdot8_avx2
#define QD_DP(acc, u, s) \
    (acc) = _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#define QD_DPS(acc, u, s, sa, sb)                                                                           \
    (acc) = _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)),                        \
                                                      _mm256_set_m128i(_mm_set1_epi16((short)(sb)),         \
                                                                       _mm_set1_epi16((short)(sa)))))
#include "qdot_impl.h"

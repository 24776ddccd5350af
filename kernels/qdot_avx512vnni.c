/* qdot_avx512vnni.c - the integer dot products (qdot_impl.h) with AVX512-VNNI on 256-bit
 * vectors: vpdpbusd (u8 x s8 quads to int32), then the scales (used by sm_qdot8_avx512 where
 * the CPU has VNNI). */
#include "kernels_internal.h"

#include <immintrin.h>

#define QDOT8_FN sm_qdot8_avx512vnni
#define QD_DP(acc, u, s) (acc) = _mm256_dpbusd_epi32((acc), (u), (s))
#define QD_DPS(acc, u, s, sa, sb)                                                                           \
    (acc) = _mm256_add_epi32((acc), _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s)), \
                                                       _mm256_set_m128i(_mm_set1_epi32(sb), _mm_set1_epi32(sa))))
#include "qdot_impl.h"

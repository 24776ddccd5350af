/* dequant_avx512.c - the vectorised dequantizers (dequant_impl.h) on 16 lanes of AVX-512: the
 * fused dot is matmul_avx512.c's float dot (groups of 16 alternating between two
 * accumulators, _mm512_reduce_add_ps of their sum). */
#include "kernels_internal.h"

#include <immintrin.h>

#define DEQUANT_FN sm_dequant_avx512
#define QDOT_FN sm_qdot_avx512
#define VW 16
#define V __m512
#define VI __m512i
#define V_U8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define V_I8(p) _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define V_SET1 _mm512_set1_ps
#define V_SET1I _mm512_set1_epi32
#define V_MUL _mm512_mul_ps
#define V_SUB _mm512_sub_ps
#define V_CVT _mm512_cvtepi32_ps
#define V_SUBI _mm512_sub_epi32
#define V_AND _mm512_and_si512
#define V_OR _mm512_or_si512
#define V_SRLI _mm512_srli_epi32
#define V_SLLI _mm512_slli_epi32
#define V_STORE _mm512_storeu_ps
#define V_LOAD _mm512_loadu_ps
#define V_FMA _mm512_fmadd_ps
#define V_ZERO _mm512_setzero_ps()
#define DOT_REDUCE(acc) _mm512_reduce_add_ps(_mm512_add_ps((acc)[0], (acc)[1]))
#include "dequant_impl.h"

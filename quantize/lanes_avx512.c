/* lanes_avx512.c - the SIMD codecs of lanes_*_impl.h on AVX-512 (16 lanes). Same bytes as the
 * scalar codecs; this file only defines the vector vocabulary. */
#include "quantize/codec_internal.h"

#include <float.h>
#include <immintrin.h>

#define LANES 16
#define QL_NAME(f) f##_avx512

typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

static inline vf v_set1(float f) { return _mm512_set1_ps(f); }
static inline vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf v_sqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline vf v_abs(vf a) { return _mm512_abs_ps(a); }
static inline vf v_neg(vf a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
}
static inline vf v_trunc(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
/* +1 or -1 with the sign of a */
static inline vf v_copysign1(vf a) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)),
                                               _mm512_castps_si512(_mm512_set1_ps(1.0f))));
}
static inline float v_hmax(vf a) { return _mm512_reduce_max_ps(a); }
static inline float v_hmin(vf a) { return _mm512_reduce_min_ps(a); }
/* C's comparisons: false on NaN, except != which is true */
static inline vm v_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline vm v_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline vm v_le(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
static inline vm v_ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline vm v_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline vm v_ne(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
static inline vf v_blend(vm m, vf if_true, vf if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
static inline vm m_and(vm a, vm b) { return (vm)(a & b); }
static inline vm m_or(vm a, vm b) { return (vm)(a | b); }
static inline bool m_any(vm m) { return m != 0; }
static inline int m_first(vm m) { return m ? __builtin_ctz((unsigned)m) : -1; }

static inline vi v_bits(vf a) { return _mm512_castps_si512(a); }
static inline vi vi_set1(int v) { return _mm512_set1_epi32(v); }
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
static inline vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
static inline vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
static inline vi vi_shl4(vi a) { return _mm512_slli_epi32(a, 4); }
static inline vi vi_sext8(vi a) { return _mm512_srai_epi32(_mm512_slli_epi32(a, 24), 24); }
static inline vi vi_blend(vm m, vi if_true, vi if_false) { return _mm512_mask_blend_epi32(m, if_false, if_true); }
/* tbl[idx] per lane, idx in 0..15 */
static inline vf v_lookup16(const float *tbl, vi idx) { return _mm512_permutexvar_ps(idx, _mm512_loadu_ps(tbl)); }
static inline vi vi_min(vi a, vi b) { return _mm512_min_epi32(a, b); }
static inline vi vi_max(vi a, vi b) { return _mm512_max_epi32(a, b); }
static inline vf vi_to_f(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vi vi_from_f(vf a) { return _mm512_cvttps_epi32(a); } /* truncating, like a C cast */
static inline void vi_store(int32_t *p, vi a) { _mm512_storeu_si512(p, a); }
/* the low byte of each lane */
static inline void vi_store_i8(int8_t *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(a)); }

#include "quantize/lanes_search_impl.h"
#include "quantize/lanes_kquants_impl.h"
#include "quantize/lanes_legacy_impl.h"

/* lanes_avx2.c - the SIMD codecs of lanes_*_impl.h on AVX2 (8 lanes). Same bytes as the scalar
 * codecs; this file only defines the vector vocabulary. */
#include "quantize/codec_internal.h"

#include <float.h>
#include <immintrin.h>

#define LANES 8
#define QL_NAME(f) f##_avx2

typedef __m256 vf;
typedef __m256i vi;
typedef __m256 vm; /* all-ones lanes where true */

static inline vf v_set1(float f) { return _mm256_set1_ps(f); }
static inline vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf v_sqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf v_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline vf v_neg(vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline vf v_trunc(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
/* +1 or -1 with the sign of a */
static inline vf v_copysign1(vf a) { return _mm256_or_ps(_mm256_and_ps(a, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f)); }
static inline float v_hmax(vf a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline float v_hmin(vf a) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
/* C's comparisons: false on NaN, except != which is true */
static inline vm v_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline vm v_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline vm v_le(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
static inline vm v_ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline vm v_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline vm v_ne(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
static inline vf v_blend(vm m, vf if_true, vf if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
static inline vm m_and(vm a, vm b) { return _mm256_and_ps(a, b); }
static inline vm m_or(vm a, vm b) { return _mm256_or_ps(a, b); }
static inline bool m_any(vm m) { return _mm256_movemask_ps(m) != 0; }
static inline int m_first(vm m) { int b = _mm256_movemask_ps(m); return b ? __builtin_ctz((unsigned)b) : -1; }

static inline vi v_bits(vf a) { return _mm256_castps_si256(a); }
static inline vi vi_set1(int v) { return _mm256_set1_epi32(v); }
static inline vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
static inline vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
static inline vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
static inline vi vi_shl4(vi a) { return _mm256_slli_epi32(a, 4); }
static inline vi vi_sext8(vi a) { return _mm256_srai_epi32(_mm256_slli_epi32(a, 24), 24); }
static inline vi vi_blend(vm m, vi if_true, vi if_false) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(if_false), _mm256_castsi256_ps(if_true), m));
}
/* tbl[idx] per lane, idx in 0..15 */
static inline vf v_lookup16(const float *tbl, vi idx) {
    vf lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(tbl), idx), hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(tbl + 8), idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
}
static inline vi vi_min(vi a, vi b) { return _mm256_min_epi32(a, b); }
static inline vi vi_max(vi a, vi b) { return _mm256_max_epi32(a, b); }
static inline vf vi_to_f(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi vi_from_f(vf a) { return _mm256_cvttps_epi32(a); } /* truncating, like a C cast */
static inline void vi_store(int32_t *p, vi a) { _mm256_storeu_si256((__m256i *)p, a); }
/* the low byte of each lane */
static inline void vi_store_i8(int8_t *p, vi a) {
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i b = _mm256_shuffle_epi8(a, pick);
    uint32_t lo = (uint32_t)_mm256_extract_epi32(b, 0), hi = (uint32_t)_mm256_extract_epi32(b, 4);
    memcpy(p, &lo, 4);
    memcpy(p + 4, &hi, 4);
}

#include "quantize/lanes_search_impl.h"
#include "quantize/lanes_kquants_impl.h"
#include "quantize/lanes_legacy_impl.h"

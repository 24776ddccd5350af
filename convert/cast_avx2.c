/* cast_avx2.c - AVX2 + F16C kernels for cv_cast_row: {F32, F16, BF16} -> {F32, F16, BF16}.
 * vcvtps2ph with round-to-nearest-even and the integer BF16 rounding below give exactly what
 * sm_f32_to_f16 / sm_f32_to_bf16 give for every non-NaN float; a group of 8 holding a NaN
 * goes through those scalar functions, so every path writes the same bytes. The last n % 8
 * values go through the same vector code, zero-padded. */
#include "convert_internal.h"

#include <immintrin.h>
#include <string.h>

int cv_cast_row_avx2(sm_type from, const void *src, sm_type to, void *dst, int64_t n);

static inline __m256 load8(sm_type t, const uint8_t *p) {
    switch (t) {
    case SM_TYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case SM_TYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default: return _mm256_loadu_ps((const float *)p);
    }
}

static inline void store1(sm_type t, uint8_t *p, float f) {
    uint16_t h;
    switch (t) {
    case SM_TYPE_F16: h = sm_f32_to_f16(f); memcpy(p, &h, 2); break;
    case SM_TYPE_BF16: h = sm_f32_to_bf16(f); memcpy(p, &h, 2); break;
    default: memcpy(p, &f, 4); break;
    }
}

static inline void store8(sm_type t, uint8_t *p, __m256 v) {
    if (t == SM_TYPE_F32) {
        _mm256_storeu_ps((float *)p, v);
        return;
    }
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) { /* a NaN: the scalar rules */
        float f[8];
        _mm256_storeu_ps(f, v);
        for (int i = 0; i < 8; i++) store1(t, p + 2 * i, f[i]);
        return;
    }
    if (t == SM_TYPE_F16) {
        _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        return;
    }
    /* BF16: (u + 0x7fff + ((u >> 16) & 1)) >> 16 */
    __m256i u = _mm256_castps_si256(v);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}

int cv_cast_row_avx2(sm_type from, const void *src, sm_type to, void *dst, int64_t n) {
    const bool ok_from = from == SM_TYPE_F32 || from == SM_TYPE_F16 || from == SM_TYPE_BF16;
    const bool ok_to = to == SM_TYPE_F32 || to == SM_TYPE_F16 || to == SM_TYPE_BF16;
    if (!ok_from || !ok_to) return -1;
    const size_t in = from == SM_TYPE_F32 ? 4 : 2, out = to == SM_TYPE_F32 ? 4 : 2;
    const uint8_t *s = src;
    uint8_t *d = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(to, d + (size_t)i * out, load8(from, s + (size_t)i * in));
    if (i < n) { /* the last n % 8 values through the same vector code, zero-padded */
        uint8_t a[32] = {0}, b[32];
        memcpy(a, s + (size_t)i * in, (size_t)(n - i) * in);
        store8(to, b, load8(from, a));
        memcpy(d + (size_t)i * out, b, (size_t)(n - i) * out);
    }
    return 0;
}

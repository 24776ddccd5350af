/* iq_search_avx2.c - the i-quants' neighbour search (q_iq23.c) on AVX2, eight neighbours at a
 * time. Each lane computes the scalar loop's terms w*(scale*q - x)*(scale*q - x) in the same operations
 * and adds them in the same order (so the same bits); each lane keeps its first smallest
 * distance, and the lanes are then merged to the first smallest in list order. */
#include "quantize/iq_grids.h"

#include <float.h>
#include <immintrin.h>
#include <limits.h>

static inline __attribute__((always_inline)) int nearest(const uint16_t *nb, const uint16_t *codes, const float *xval,
                                                         const float *w, float scale, const int dim, const int bits) {
    /* lane l of t[i] is the term of level l (2-bit grids: of level l & 3, as the permute below
     * also sees the next coordinate's low bit; level 3 never occurs) */
    const __m256 q = bits == 2 ? _mm256_setr_ps(1, 3, 5, 7, 1, 3, 5, 7) : _mm256_setr_ps(1, 3, 5, 7, 9, 11, 13, 15);
    const __m256 sq = _mm256_mul_ps(_mm256_set1_ps(scale), q);
    __m256 t[8];
    for (int i = 0; i < dim; ++i) {
        const __m256 diff = _mm256_sub_ps(sq, _mm256_set1_ps(xval[i]));
        t[i] = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w[i]), diff), diff);
    }
    const int n = nb[0];
    const __m256i last = _mm256_set1_epi32(n);
    __m256i jv = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8), bestj = _mm256_set1_epi32(-1);
    __m256 bestv = _mm256_set1_ps(FLT_MAX);
    for (int j = 1; j <= n; j += 8) {
        /* past the list's end the lanes read the next list (or the padding) and are dropped */
        const __m256i c = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(codes + j)));
        __m256 s = _mm256_setzero_ps();
        for (int i = 0; i < dim; ++i) s = _mm256_add_ps(s, _mm256_permutevar8x32_ps(t[i], _mm256_srli_epi32(c, bits * i)));
        const __m256 in = _mm256_castsi256_ps(_mm256_cmpgt_epi32(jv, last)); /* all-ones past the end */
        const __m256 lt = _mm256_andnot_ps(in, _mm256_cmp_ps(s, bestv, _CMP_LT_OQ));
        bestv = _mm256_blendv_ps(bestv, s, lt);
        bestj = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bestj), _mm256_castsi256_ps(jv), lt));
        jv = _mm256_add_epi32(jv, _mm256_set1_epi32(8));
    }
    float v[8];
    int32_t at[8];
    _mm256_storeu_ps(v, bestv);
    _mm256_storeu_si256((__m256i *)at, bestj);
    float best_d2 = FLT_MAX;
    int best = INT_MAX;
    for (int k = 0; k < 8; ++k) /* a lane that took one holds a value below FLT_MAX */
        if (at[k] >= 0 && (v[k] < best_d2 || (v[k] == best_d2 && at[k] < best))) best_d2 = v[k], best = at[k];
    return best == INT_MAX ? -1 : nb[best];
}

int q_iq_nearest_avx2(const uint16_t *nb, const uint16_t *codes, int dim, const float *xval, const float *w,
                      float scale) {
    return dim == 8 ? nearest(nb, codes, xval, w, scale, 8, 2) : nearest(nb, codes, xval, w, scale, 4, 3);
}

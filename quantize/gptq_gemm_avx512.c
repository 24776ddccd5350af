/* gptq_gemm_avx512.c - AVX-512 micro-kernels for the GPTQ GEMM: an 8 x 24 register tile of
 * doubles (24 accumulators, 3 B vectors, 1 broadcast) and the fused axpy. Every element gets
 * the same fma sequence as the scalar kernel, so results are identical across ISAs. */
#include "quantize/gptq_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

static void tile_avx512(int64_t k, const double *ap, const double *bp, double *c, int64_t ldc) {
    __m512d acc[8][3];
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < 3; j++) acc[r][j] = _mm512_loadu_pd(c + r * ldc + 8 * j);
    for (int64_t p = 0; p < k; p++, ap += 8, bp += 24) {
        const __m512d b0 = _mm512_loadu_pd(bp), b1 = _mm512_loadu_pd(bp + 8), b2 = _mm512_loadu_pd(bp + 16);
        for (int r = 0; r < 8; r++) {
            const __m512d a = _mm512_set1_pd(ap[r]);
            acc[r][0] = _mm512_fmadd_pd(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_pd(a, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_pd(a, b2, acc[r][2]);
        }
    }
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < 3; j++) _mm512_storeu_pd(c + r * ldc + 8 * j, acc[r][j]);
}

static void axpy_avx512(int64_t n, double alpha, const double *x, double *y) {
    const __m512d va = _mm512_set1_pd(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(y + i, _mm512_fmadd_pd(va, _mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i)));
    if (i < n) {
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        _mm512_mask_storeu_pd(y + i, m, _mm512_fmadd_pd(va, _mm512_maskz_loadu_pd(m, x + i), _mm512_maskz_loadu_pd(m, y + i)));
    }
}

const gq_kernels gq_kernels_avx512 = {8, 24, tile_avx512, axpy_avx512, "avx512"};
#endif

/* gptq_gemm_avx2.c - AVX2+FMA micro-kernels for the GPTQ GEMM: a 4 x 12 register tile of
 * doubles (12 accumulators, 3 B vectors, 1 broadcast) and the fused axpy. Every element gets
 * the same fma sequence as the scalar kernel, so results are identical across ISAs. */
#include "quantize/gptq_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

static void tile_avx2(int64_t k, const double *ap, const double *bp, double *c, int64_t ldc) {
    __m256d c00 = _mm256_loadu_pd(c), c01 = _mm256_loadu_pd(c + 4), c02 = _mm256_loadu_pd(c + 8);
    __m256d c10 = _mm256_loadu_pd(c + ldc), c11 = _mm256_loadu_pd(c + ldc + 4), c12 = _mm256_loadu_pd(c + ldc + 8);
    __m256d c20 = _mm256_loadu_pd(c + 2 * ldc), c21 = _mm256_loadu_pd(c + 2 * ldc + 4),
            c22 = _mm256_loadu_pd(c + 2 * ldc + 8);
    __m256d c30 = _mm256_loadu_pd(c + 3 * ldc), c31 = _mm256_loadu_pd(c + 3 * ldc + 4),
            c32 = _mm256_loadu_pd(c + 3 * ldc + 8);
    for (int64_t p = 0; p < k; p++, ap += 4, bp += 12) {
        const __m256d b0 = _mm256_loadu_pd(bp), b1 = _mm256_loadu_pd(bp + 4), b2 = _mm256_loadu_pd(bp + 8);
        __m256d a = _mm256_broadcast_sd(ap);
        c00 = _mm256_fmadd_pd(a, b0, c00); c01 = _mm256_fmadd_pd(a, b1, c01); c02 = _mm256_fmadd_pd(a, b2, c02);
        a = _mm256_broadcast_sd(ap + 1);
        c10 = _mm256_fmadd_pd(a, b0, c10); c11 = _mm256_fmadd_pd(a, b1, c11); c12 = _mm256_fmadd_pd(a, b2, c12);
        a = _mm256_broadcast_sd(ap + 2);
        c20 = _mm256_fmadd_pd(a, b0, c20); c21 = _mm256_fmadd_pd(a, b1, c21); c22 = _mm256_fmadd_pd(a, b2, c22);
        a = _mm256_broadcast_sd(ap + 3);
        c30 = _mm256_fmadd_pd(a, b0, c30); c31 = _mm256_fmadd_pd(a, b1, c31); c32 = _mm256_fmadd_pd(a, b2, c32);
    }
    _mm256_storeu_pd(c, c00); _mm256_storeu_pd(c + 4, c01); _mm256_storeu_pd(c + 8, c02);
    _mm256_storeu_pd(c + ldc, c10); _mm256_storeu_pd(c + ldc + 4, c11); _mm256_storeu_pd(c + ldc + 8, c12);
    _mm256_storeu_pd(c + 2 * ldc, c20); _mm256_storeu_pd(c + 2 * ldc + 4, c21); _mm256_storeu_pd(c + 2 * ldc + 8, c22);
    _mm256_storeu_pd(c + 3 * ldc, c30); _mm256_storeu_pd(c + 3 * ldc + 4, c31); _mm256_storeu_pd(c + 3 * ldc + 8, c32);
}

static void axpy_avx2(int64_t n, double alpha, const double *x, double *y) {
    const __m256d va = _mm256_set1_pd(alpha);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
    if (i < n) { /* the last n % 4 elements: the same vector fma, masked */
        const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - i), _mm256_setr_epi64x(0, 1, 2, 3));
        _mm256_maskstore_pd(y + i, m, _mm256_fmadd_pd(va, _mm256_maskload_pd(x + i, m), _mm256_maskload_pd(y + i, m)));
    }
}

const gq_kernels gq_kernels_avx2 = {4, 12, tile_avx2, axpy_avx2, "avx2"};
#endif

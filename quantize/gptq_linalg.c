/* gptq_linalg.c - the dense linear algebra of GPTQ in double precision: blocked Cholesky,
 * blocked triangular inverse, and from them the upper Cholesky factor of H^-1.
 *
 * H^-1 = U^T U is obtained without forming H^-1: with P the order-reversing permutation,
 * P H P = L L^T gives H = (P L P)(P L P)^T with P L P upper triangular, hence
 * U = (P L P)^-1 = P L^-1 P. One Cholesky and one triangular inverse (2/3 n^3 flops instead of
 * the 5/3 n^3 of torch's cholesky, cholesky_inverse, cholesky), and no explicit inverse whose
 * rounding errors the second factorization would inherit.
 *
 * The heavy parts are gq_gemm calls (trailing rank-NB updates of the Cholesky, the panel
 * products of the inverse); the small diagonal blocks are done with fma() in a fixed order, so
 * the factors are bit-identical for any thread count and ISA. */
#include "quantize/gptq_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NB 96   /* Cholesky block */
#define NBI 192 /* triangular-inverse block */

/* x (ld ldx) = inverse of the lower-triangular nb x nb block l (ld ldl); x's upper part = 0.
 * Row by row: x[i][j] = -(sum_{k=j}^{i-1} l[i][k] x[k][j]) / l[i][i], the sum accumulated in k
 * order as axpys of x's rows (adding l[i][k] * 0 beyond a row's end changes nothing). */
static void small_tri_inverse(const double *l, int64_t ldl, double *x, int64_t ldx, int64_t nb) {
    const gq_kernels *kr = gq_kernels_get();
    for (int64_t i = 0; i < nb; i++) {
        double *xi = x + i * ldx;
        memset(xi, 0, sizeof(double) * (size_t)nb);
        for (int64_t k = 0; k < i; k++) kr->axpy(k + 1, l[i * ldl + k], x + k * ldx, xi);
        const double d = l[i * ldl + i];
        for (int64_t j = 0; j < i; j++) xi[j] = -xi[j] / d;
        xi[i] = 1.0 / d;
    }
}

/* Cholesky of the diagonal block a[k0..k1) (previous blocks' updates already applied).
 * Returns the first bad column or -1. */
static int64_t chol_block(double *a, int64_t n, int64_t k0, int64_t k1, const double *diag0) {
    for (int64_t j = k0; j < k1; j++) {
        double d = a[j * n + j];
        for (int64_t k = k0; k < j; k++) d = fma(-a[j * n + k], a[j * n + k], d);
        if (!(d > 1e-12 * diag0[j]) || !isfinite(d)) return j;
        const double ljj = sqrt(d);
        a[j * n + j] = ljj;
        for (int64_t i = j + 1; i < k1; i++) {
            double s = a[i * n + j];
            for (int64_t k = k0; k < j; k++) s = fma(-a[i * n + k], a[j * n + k], s);
            a[i * n + j] = s / ljj;
        }
    }
    return -1;
}

/* In-place lower Cholesky; *bad = the failing column (or -1). -1 only for out of memory or a
 * non-positive pivot. */
static int cholesky_lower(double *a, int64_t n, int64_t *bad) {
    *bad = -1;
    double *diag0 = malloc(sizeof(double) * (size_t)n);
    double *linv = malloc(sizeof(double) * NB * NB);
    double *tmp = malloc(sizeof(double) * (size_t)(n * NB));
    int rc = 0;
    if (!diag0 || !linv || !tmp) {
        rc = sm_error("gptq: out of memory for the Cholesky factorization (n = %lld)", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) diag0[i] = a[i * n + i];
    for (int64_t k0 = 0; k0 < n; k0 += NB) {
        const int64_t k1 = n - k0 < NB ? n : k0 + NB, nb = k1 - k0, m = n - k1;
        if ((*bad = chol_block(a, n, k0, k1, diag0)) >= 0) {
            rc = -1;
            goto done;
        }
        if (m == 0) break;
        /* panel: A[k1:, k0:k1] <- A[k1:, k0:k1] L_kk^-T */
        small_tri_inverse(a + k0 * n + k0, n, linv, NB, nb);
        memset(tmp, 0, sizeof(double) * (size_t)(m * nb));
        gq_gemm_args p = {.m = m, .n = nb, .k = nb, .sign = 1.0, .a = a + k1 * n + k0, .a_rs = n, .a_cs = 1,
                          .b = linv, .b_rs = 1, .b_cs = NB, .c = tmp, .ldc = nb, .parallel = true};
        if ((rc = gq_gemm(&p))) goto done;
        for (int64_t i = 0; i < m; i++) memcpy(a + (k1 + i) * n + k0, tmp + i * nb, sizeof(double) * (size_t)nb);
        /* trailing update of the lower triangle: A[k1:, k1:] -= P P^T (P read from the
         * contiguous copy: fewer pages touched than in the n-strided panel) */
        gq_gemm_args s = {.m = m, .n = m, .k = nb, .sign = -1.0, .a = tmp, .a_rs = nb, .a_cs = 1, .b = tmp,
                          .b_rs = 1, .b_cs = nb, .c = a + k1 * n + k1, .ldc = n, .lower = true, .parallel = true};
        if ((rc = gq_gemm(&s))) goto done;
    }
done:
    free(diag0);
    free(linv);
    free(tmp);
    return rc;
}

/* In place: a's lower triangle L becomes L^-1 (its strict upper part is zeroed). Right to left
 * over diagonal blocks (LAPACK's dtrtri order): with X's trailing part known,
 * X[j1:, j0:j1] = -(X[j1:, j1:] L[j1:, j0:j1]) L_jj^-1, which overwrites the panel of L it was
 * computed from. */
static int tri_inverse_lower_inplace(double *a, int64_t n) {
    double *t = malloc(sizeof(double) * (size_t)(n * NBI)), *xjj = malloc(sizeof(double) * NBI * NBI);
    if (!t || !xjj) {
        free(t);
        free(xjj);
        return sm_error("gptq: out of memory in the triangular inverse (n = %lld)", (long long)n);
    }
    /* the strict upper part (what the Cholesky left of A) must read as zero in the products */
    for (int64_t i = 0; i < n; i++) memset(a + i * n + i + 1, 0, sizeof(double) * (size_t)(n - i - 1));
    const int64_t last = (n - 1) / NBI * NBI;
    for (int64_t j0 = last; j0 >= 0; j0 -= NBI) {
        const int64_t nb = n - j0 < NBI ? n - j0 : NBI, j1 = j0 + nb, m = n - j1;
        small_tri_inverse(a + j0 * n + j0, n, xjj, NBI, nb);
        if (m > 0) {
            memset(t, 0, sizeof(double) * (size_t)(m * nb));
            gq_gemm_args g1 = {.m = m, .n = nb, .k = m, .sign = 1.0, .a = a + j1 * n + j1, .a_rs = n, .a_cs = 1,
                               .b = a + j1 * n + j0, .b_rs = n, .b_cs = 1, .c = t, .ldc = nb, .a_lower = true,
                               .parallel = true};
            if (gq_gemm(&g1)) goto fail;
            for (int64_t i = 0; i < m; i++) memset(a + (j1 + i) * n + j0, 0, sizeof(double) * (size_t)nb);
            gq_gemm_args g2 = {.m = m, .n = nb, .k = nb, .sign = -1.0, .a = t, .a_rs = nb, .a_cs = 1, .b = xjj,
                               .b_rs = NBI, .b_cs = 1, .c = a + j1 * n + j0, .ldc = n, .parallel = true};
            if (gq_gemm(&g2)) goto fail;
        }
        for (int64_t i = 0; i < nb; i++) memcpy(a + (j0 + i) * n + j0, xjj + i * NBI, sizeof(double) * (size_t)nb);
    }
    free(t);
    free(xjj);
    return 0;
fail:
    free(t);
    free(xjj);
    return -1;
}

/* In place on the GPU: a becomes L^-1, held to the CPU path's pivot rule L_jj^2 > 1e-12 a_jj. */
static int cholesky_inverse_cuda(double *a, int64_t n, int64_t *bad) {
    double *diag = malloc(sizeof(double) * (size_t)n);
    if (!diag) return sm_error("gptq: out of memory");
    for (int64_t j = 0; j < n; j++) diag[j] = a[j * n + j];
    int rc = sm_cuda_cholesky_inverse(a, n, a, bad);
    for (int64_t j = 0; !rc && j < n; j++) {
        const double d = 1.0 / (a[j * n + j] * a[j * n + j]);
        if (!(d > 1e-12 * diag[j]) || !isfinite(d)) {
            *bad = j;
            rc = -1;
        }
    }
    free(diag);
    return rc;
}

int gq_inverse_cholesky_upper(double *a, int64_t n, double *u, sm_device device) {
    const size_t nn = (size_t)(n * n);
    for (size_t k = 0; k < nn / 2; k++) { /* a = P A P, in place */
        const double t = a[k];
        a[k] = a[nn - 1 - k];
        a[nn - 1 - k] = t;
    }
    int64_t bad = -1;
    if (device == SM_DEVICE_CUDA) {
        if (cholesky_inverse_cuda(a, n, &bad)) {
            if (bad >= 0)
                return sm_error("gptq: the Hessian is not positive definite (column %lld of the factorization); "
                                "raise the dampening", (long long)(n - 1 - bad));
            return -1;
        }
    } else {
        if (cholesky_lower(a, n, &bad)) {
            if (bad >= 0)
                return sm_error("gptq: the Hessian is not positive definite (column %lld of the factorization); "
                                "raise the dampening", (long long)(n - 1 - bad));
            return -1;
        }
        if (tri_inverse_lower_inplace(a, n)) return -1;
    }
    for (size_t k = 0; k < nn / 2; k++) { /* U = P L^-1 P */
        const double t = a[k];
        a[k] = a[nn - 1 - k];
        a[nn - 1 - k] = t;
    }
    if (u != a) memcpy(u, a, sizeof(double) * nn);
    return 0;
}

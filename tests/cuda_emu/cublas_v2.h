// cublas_v2.h (emulation) - reference implementations, column-major as cuBLAS defines them, of
// the cuBLAS calls the plugin makes (see cuda_runtime.h here). Cases the plugin does not use
// return CUBLAS_STATUS_NOT_SUPPORTED, so a call that changes form fails loudly in the tests.
#ifndef SMELT_CUDA_EMU_CUBLAS_H
#define SMELT_CUDA_EMU_CUBLAS_H

#include "cuda_runtime.h"

typedef struct emu_blas_handle *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
typedef enum { CUBLAS_FILL_MODE_LOWER = 0, CUBLAS_FILL_MODE_UPPER = 1 } cublasFillMode_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_SIDE_LEFT = 0, CUBLAS_SIDE_RIGHT = 1 } cublasSideMode_t;
typedef enum { CUBLAS_DIAG_NON_UNIT = 0, CUBLAS_DIAG_UNIT = 1 } cublasDiagType_t;

static inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)malloc(1);
    return CUBLAS_STATUS_SUCCESS;
}
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2 } cublasMath_t;
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

// element (i, j) of op(X) for a column-major X with leading dimension ld
static inline double emu_op(const double *x, int ld, cublasOperation_t op, int i, int j) {
    return op == CUBLAS_OP_N ? x[i + (int64_t)j * ld] : x[j + (int64_t)i * ld];
}

// C = alpha op(A) op(B) + beta C; C m x n, op(A) m x k, op(B) k x n (SGEMM: products summed in
// double here, which a GPU does not do: results equal to rounding)
static inline float emu_opf(const float *x, int ld, cublasOperation_t op, int i, int j) {
    return op == CUBLAS_OP_N ? x[i + (int64_t)j * ld] : x[j + (int64_t)i * ld];
}
static inline cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                                         const float *beta, float *C, int ldc) {
    if (m < 0 || n < 0 || k < 0 || ldc < m || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += (double)emu_opf(A, lda, ta, i, p) * emu_opf(B, ldb, tb, p, j);
            float *c = C + i + (int64_t)j * ldc;
            *c = *beta == 0.0f ? (float)(*alpha * s) : (float)(*alpha * s) + *beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}

// DGEMM: the same in double
static inline cublasStatus_t cublasDgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const double *alpha, const double *A, int lda, const double *B,
                                         int ldb, const double *beta, double *C, int ldc) {
    if (m < 0 || n < 0 || k < 0 || ldc < m || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += emu_op(A, lda, ta, i, p) * emu_op(B, ldb, tb, p, j);
            double *c = C + i + (int64_t)j * ldc;
            *c = *beta == 0.0 ? *alpha * s : *alpha * s + *beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}

// C = alpha op(A) op(A)^T + beta C on the uplo triangle; C n x n, op(A) n x k
static inline cublasStatus_t cublasDsyrk(cublasHandle_t, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                                         const double *alpha, const double *A, int lda, const double *beta, double *C,
                                         int ldc) {
    if (n < 0 || k < 0 || ldc < n || lda < (trans == CUBLAS_OP_N ? n : k)) return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            if (uplo == CUBLAS_FILL_MODE_LOWER ? i < j : i > j) continue;
            double s = 0;
            for (int p = 0; p < k; p++) s += emu_op(A, lda, trans, i, p) * emu_op(A, lda, trans, j, p);
            double *c = C + i + (int64_t)j * ldc;
            *c = *beta == 0.0 ? *alpha * s : *alpha * s + *beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}

// solve op(A) X = alpha B, X overwriting B (m x n); only side left, lower, no transpose
static inline cublasStatus_t cublasDtrsm(cublasHandle_t, cublasSideMode_t side, cublasFillMode_t uplo,
                                         cublasOperation_t trans, cublasDiagType_t diag, int m, int n,
                                         const double *alpha, const double *A, int lda, double *B, int ldb) {
    if (side != CUBLAS_SIDE_LEFT || uplo != CUBLAS_FILL_MODE_LOWER || trans != CUBLAS_OP_N)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || lda < m || ldb < m) return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++) {
        double *b = B + (int64_t)j * ldb;
        for (int i = 0; i < m; i++) {
            double s = *alpha * b[i];
            for (int p = 0; p < i; p++) s -= A[i + (int64_t)p * lda] * b[p];
            b[i] = diag == CUBLAS_DIAG_UNIT ? s : s / A[i + (int64_t)i * lda];
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

static inline cublasStatus_t cublasDdot(cublasHandle_t, int n, const double *x, int incx, const double *y, int incy,
                                        double *result) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[(int64_t)i * incx] * y[(int64_t)i * incy];
    *result = s;
    return CUBLAS_STATUS_SUCCESS;
}

#endif

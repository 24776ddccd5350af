// cusolverDn.h (emulation) - a reference DPOTRF (column-major, as cuSOLVER defines it) for
// the plugin's tests; see cuda_runtime.h here. Only the lower-triangular form is provided.
#ifndef SMELT_CUDA_EMU_CUSOLVER_H
#define SMELT_CUDA_EMU_CUSOLVER_H

#include <math.h>

#include "cublas_v2.h"

typedef struct emu_solver_handle *cusolverDnHandle_t;
typedef int cusolverStatus_t;
enum { CUSOLVER_STATUS_SUCCESS = 0, CUSOLVER_STATUS_INVALID_VALUE = 3, CUSOLVER_STATUS_NOT_SUPPORTED = 9 };

static inline cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t *h) {
    *h = (cusolverDnHandle_t)malloc(1);
    return CUSOLVER_STATUS_SUCCESS;
}
static inline cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h) {
    free(h);
    return CUSOLVER_STATUS_SUCCESS;
}
static inline cusolverStatus_t cusolverDnDpotrf_bufferSize(cusolverDnHandle_t, cublasFillMode_t, int n, double *,
                                                           int lda, int *lwork) {
    if (n < 0 || lda < n) return CUSOLVER_STATUS_INVALID_VALUE;
    *lwork = n;
    return CUSOLVER_STATUS_SUCCESS;
}
// A = L L^T in A's lower triangle; *info = j + 1 if the leading minor of order j + 1 is not
// positive definite (the factorization stops there), else 0
static inline cusolverStatus_t cusolverDnDpotrf(cusolverDnHandle_t, cublasFillMode_t uplo, int n, double *A, int lda,
                                                double *work, int lwork, int *info) {
    if (uplo != CUBLAS_FILL_MODE_LOWER) return CUSOLVER_STATUS_NOT_SUPPORTED;
    if (n < 0 || lda < n || lwork < n || !work) return CUSOLVER_STATUS_INVALID_VALUE;
    *info = 0;
    for (int j = 0; j < n; j++) {
        double d = A[j + (int64_t)j * lda];
        for (int p = 0; p < j; p++) d -= A[j + (int64_t)p * lda] * A[j + (int64_t)p * lda];
        if (!(d > 0)) {
            *info = j + 1;
            return CUSOLVER_STATUS_SUCCESS;
        }
        const double l = sqrt(d);
        A[j + (int64_t)j * lda] = l;
        for (int i = j + 1; i < n; i++) {
            double s = A[i + (int64_t)j * lda];
            for (int p = 0; p < j; p++) s -= A[i + (int64_t)p * lda] * A[j + (int64_t)p * lda];
            A[i + (int64_t)j * lda] = s / l;
        }
    }
    return CUSOLVER_STATUS_SUCCESS;
}

#endif

// gptq.cu - GPTQ's double-precision linear algebra on the device (kernels.h, "CUDA GPTQ"):
// the Hessian as a cuBLAS DSYRK, the inverse Cholesky factor with cuSOLVER's DPOTRF and a
// DTRSM against the identity, the lazy-batch updates and the loss report as DGEMMs.
//
// cuBLAS is column-major; every matrix here is row-major on the host. A row-major r x c
// matrix is the column-major c x r matrix of its transpose, so each call below is written on
// the transposes (the comments give the row-major meaning).
#include "check.h"
#include "syrk.h"
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYRK_CHUNK_BYTES ((size_t)128 << 20) // widened tokens per DSYRK
#define LOSS_ROWS 256                          // rows of D per loss DGEMM

// rows x cols floats (row stride ld) widened into y (rows x cols); *bad set if any is not finite
__global__ void k_widen_rows(const float *x, int64_t ld, int64_t rows, int64_t cols, double *y, int *bad) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows * cols; i += (int64_t)gridDim.x * blockDim.x) {
        const float v = x[i / cols * ld + i % cols];
        if (!isfinite(v)) *bad = 1;
        y[i] = (double)v;
    }
}

// absum[c] += sum over the rows of |y[t, c]| (rows x cols doubles), each column summed in row
// order as the CPU observer sums a sample's tokens (the same doubles, the same order)
__global__ void k_abs_cols(const double *y, int64_t rows, int64_t cols, double *absum) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        double acc = 0;
        for (int64_t t = 0; t < rows; t++) acc += fabs(y[t * cols + c]);
        absum[c] += acc;
    }
}

__global__ void k_set_diagonal(double *x, int64_t n, double v) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i * n + i] = v;
}

// ---- Hessian: S += X^T X ----

struct sm_cuda_syrk {
    int64_t n, chunk;
    double *S, *xd; // S: n x n (lower triangle, column-major); xd: chunk x n widened tokens
    double *absum;  // n: per column, the sum of |x| over the tokens (AWQ's mean |x|)
    float *xf;
    int *bad;       // set by k_widen_rows when an activation is not finite
    cublasHandle_t blas;
};

extern "C" void sm_cuda_syrk_free(sm_cuda_syrk *s) {
    if (!s) return;
    cudaFree(s->S);
    cudaFree(s->absum);
    cudaFree(s->xd);
    cudaFree(s->xf);
    cudaFree(s->bad);
    if (s->blas) cublasDestroy(s->blas);
    free(s);
}

static int syrk_init(sm_cuda_syrk *s, int64_t n) {
    s->n = n;
    s->chunk = (int64_t)(SYRK_CHUNK_BYTES / sizeof(double)) / n;
    if (s->chunk < 1) s->chunk = 1;
    BLAS(cublasCreate(&s->blas), "create handle");
    if (dev_alloc((void **)&s->S, sizeof(double) * (size_t)(n * n)) ||
        dev_alloc((void **)&s->xd, sizeof(double) * (size_t)(s->chunk * n)) ||
        dev_alloc((void **)&s->xf, sizeof(float) * (size_t)(s->chunk * n)) || dev_alloc((void **)&s->bad, sizeof(int)) ||
        dev_alloc((void **)&s->absum, sizeof(double) * (size_t)n))
        return -1;
    CU(cudaMemset(s->S, 0, sizeof(double) * (size_t)(n * n)), "clear the Hessian");
    CU(cudaMemset(s->absum, 0, sizeof(double) * (size_t)n), "clear the |x| sums");
    CU(cudaMemset(s->bad, 0, sizeof(int)), "clear");
    return 0;
}

extern "C" int sm_cuda_syrk_new(int64_t n, sm_cuda_syrk **out) {
    *out = NULL;
    if (n <= 0 || n > (1 << 17)) return sm_error("CUDA: Hessian of %lld columns is out of range", (long long)n);
    sm_cuda_syrk *s = (sm_cuda_syrk *)calloc(1, sizeof *s);
    if (!s) return sm_error("out of memory");
    if (syrk_init(s, n)) {
        sm_cuda_syrk_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

extern "C" int sm_cuda_syrk_add(sm_cuda_syrk *s, const float *x, int64_t n_tok, int64_t ld) {
    const int64_t n = s->n;
    for (int64_t t0 = 0; t0 < n_tok; t0 += s->chunk) {
        const int64_t nt = n_tok - t0 < s->chunk ? n_tok - t0 : s->chunk;
        CU(cudaMemcpy2D(s->xf, sizeof(float) * (size_t)n, x + t0 * ld, sizeof(float) * (size_t)ld,
                        sizeof(float) * (size_t)n, (size_t)nt, cudaMemcpyHostToDevice),
           "upload activations");
        if (smcu_syrk_add_device(s, s->xf, nt, n)) return -1;
    }
    return 0;
}

int smcu_syrk_add_device(sm_cuda_syrk *s, const float *x, int64_t n_tok, int64_t ld) {
    const int64_t n = s->n;
    const double one = 1.0;
    for (int64_t t0 = 0; t0 < n_tok; t0 += s->chunk) {
        const int64_t nt = n_tok - t0 < s->chunk ? n_tok - t0 : s->chunk;
        SM_LAUNCH(k_widen_rows, grid_stride_blocks(nt * n), 256, x + t0 * ld, ld, nt, n, s->xd, s->bad);
        CU(cudaGetLastError(), "widen activations");
        SM_LAUNCH(k_abs_cols, grid_stride_blocks(n), 256, s->xd, nt, n, s->absum);
        CU(cudaGetLastError(), "sum |x|");
        BLAS(cublasDsyrk(s->blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, (int)n, (int)nt, &one, s->xd, (int)n, &one,
                         s->S, (int)n),
             "DSYRK");
    }
    int bad = 0;
    CU(cudaMemcpy(&bad, s->bad, sizeof(int), cudaMemcpyDeviceToHost), "read the finiteness flag");
    if (bad) return sm_error("hessian: an input activation is not finite (must be finite)");
    return 0;
}

extern "C" int sm_cuda_syrk_read(sm_cuda_syrk *s, double *host) {
    const int64_t n = s->n;
    CU(cudaMemcpy(host, s->S, sizeof(double) * (size_t)(n * n), cudaMemcpyDeviceToHost), "download the Hessian");
    // column-major lower (i >= j at i + j*n) is the row-major upper triangle: mirror it
    for (int64_t r = 1; r < n; r++)
        for (int64_t c = 0; c < r; c++) host[r * n + c] = host[c * n + r];
    return 0;
}

extern "C" int sm_cuda_syrk_read_abs(sm_cuda_syrk *s, double *host) {
    CU(cudaMemcpy(host, s->absum, sizeof(double) * (size_t)s->n, cudaMemcpyDeviceToHost), "download the |x| sums");
    return 0;
}

// ---- the inverse Cholesky factor ----

struct chol_bufs {
    double *a, *x, *work;
    int *info;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
};

static void chol_free(chol_bufs *b) {
    cudaFree(b->a);
    cudaFree(b->x);
    cudaFree(b->work);
    cudaFree(b->info);
    if (b->blas) cublasDestroy(b->blas);
    if (b->solver) cusolverDnDestroy(b->solver);
}

static int chol_run(chol_bufs *b, const double *a, int64_t n, double *linv, int64_t *bad) {
    const size_t bytes = sizeof(double) * (size_t)(n * n);
    BLAS(cublasCreate(&b->blas), "create handle");
    SOLVER(cusolverDnCreate(&b->solver), "create handle");
    if (dev_alloc((void **)&b->a, bytes) || dev_alloc((void **)&b->x, bytes) ||
        dev_alloc((void **)&b->info, sizeof(int)))
        return -1;
    // a is symmetric: its column-major reading is the same matrix
    CU(cudaMemcpy(b->a, a, bytes, cudaMemcpyHostToDevice), "upload the Hessian");
    int lwork = 0;
    SOLVER(cusolverDnDpotrf_bufferSize(b->solver, CUBLAS_FILL_MODE_LOWER, (int)n, b->a, (int)n, &lwork),
           "DPOTRF workspace");
    if (dev_alloc((void **)&b->work, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1))) return -1;
    SOLVER(cusolverDnDpotrf(b->solver, CUBLAS_FILL_MODE_LOWER, (int)n, b->a, (int)n, b->work, lwork, b->info),
           "DPOTRF");
    int info = 0;
    CU(cudaMemcpy(&info, b->info, sizeof(int), cudaMemcpyDeviceToHost), "read DPOTRF's status");
    if (info > 0) {
        *bad = info - 1;
        return sm_error("CUDA: the matrix is not positive definite (column %d of the factorization)", info - 1);
    }
    if (info < 0) return sm_error("cuSOLVER: DPOTRF rejected argument %d", -info);
    // X = L^-1: solve L X = I (column-major; only a's lower triangle is read)
    CU(cudaMemset(b->x, 0, bytes), "clear");
    SM_LAUNCH(k_set_diagonal, grid_stride_blocks(n), 256, b->x, n, 1.0);
    CU(cudaGetLastError(), "identity");
    const double one = 1.0;
    BLAS(cublasDtrsm(b->blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, (int)n,
                     (int)n, &one, b->a, (int)n, b->x, (int)n),
         "DTRSM");
    CU(cudaMemcpy(linv, b->x, bytes, cudaMemcpyDeviceToHost), "download the factor");
    // the download is X^T in row-major terms: transpose in place, keep the lower triangle
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = r + 1; c < n; c++) {
            linv[c * n + r] = linv[r * n + c];
            linv[r * n + c] = 0.0;
        }
    return 0;
}

extern "C" int sm_cuda_cholesky_inverse(const double *a, int64_t n, double *linv, int64_t *bad) {
    *bad = -1;
    if (n <= 0 || n > (1 << 17)) return sm_error("CUDA: %lld columns is out of range", (long long)n);
    chol_bufs b;
    memset(&b, 0, sizeof b);
    const int rc = chol_run(&b, a, n, linv, bad);
    chol_free(&b);
    return rc;
}

// ---- the lazy-batch updates and the loss ----

struct sm_cuda_gptq {
    int64_t n, rows, e_cap;
    double *U, *H, *W, *E, *D, *T;
    cublasHandle_t blas;
};

extern "C" void sm_cuda_gptq_free(sm_cuda_gptq *g) {
    if (!g) return;
    cudaFree(g->U);
    cudaFree(g->H);
    cudaFree(g->W);
    cudaFree(g->E);
    cudaFree(g->D);
    cudaFree(g->T);
    if (g->blas) cublasDestroy(g->blas);
    free(g);
}

static int gptq_init(sm_cuda_gptq *g, int64_t n, const double *U, const double *H) {
    const size_t bytes = sizeof(double) * (size_t)(n * n);
    g->n = n;
    BLAS(cublasCreate(&g->blas), "create handle");
    if (dev_alloc((void **)&g->U, bytes)) return -1;
    CU(cudaMemcpy(g->U, U, bytes, cudaMemcpyHostToDevice), "upload U");
    if (H) {
        if (dev_alloc((void **)&g->H, bytes) || dev_alloc((void **)&g->D, sizeof(double) * (size_t)(LOSS_ROWS * n)) ||
            dev_alloc((void **)&g->T, sizeof(double) * (size_t)(LOSS_ROWS * n)))
            return -1;
        CU(cudaMemcpy(g->H, H, bytes, cudaMemcpyHostToDevice), "upload H");
    }
    return 0;
}

extern "C" int sm_cuda_gptq_new(int64_t n, const double *U, const double *H, sm_cuda_gptq **out) {
    *out = NULL;
    if (n <= 0 || n > (1 << 17)) return sm_error("CUDA: %lld columns is out of range", (long long)n);
    sm_cuda_gptq *g = (sm_cuda_gptq *)calloc(1, sizeof *g);
    if (!g) return sm_error("out of memory");
    if (gptq_init(g, n, U, H)) {
        sm_cuda_gptq_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

extern "C" int sm_cuda_gptq_load(sm_cuda_gptq *g, const double *W, int64_t rows) {
    const size_t bytes = sizeof(double) * (size_t)(rows * g->n);
    if (rows != g->rows) {
        cudaFree(g->W);
        cudaFree(g->E);
        g->W = g->E = NULL;
        g->rows = g->e_cap = 0;
        if (dev_alloc((void **)&g->W, bytes)) return -1;
        g->rows = rows;
    }
    CU(cudaMemcpy(g->W, W, bytes, cudaMemcpyHostToDevice), "upload W");
    return 0;
}

extern "C" int sm_cuda_gptq_fetch(sm_cuda_gptq *g, int64_t c0, int64_t c1, double *W) {
    if (c0 < 0 || c1 > g->n || c0 >= c1) return sm_error("CUDA: bad column range [%lld, %lld)", (long long)c0, (long long)c1);
    const size_t pitch = sizeof(double) * (size_t)g->n;
    CU(cudaMemcpy2D(W + c0, pitch, g->W + c0, pitch, sizeof(double) * (size_t)(c1 - c0), (size_t)g->rows,
                    cudaMemcpyDeviceToHost),
       "download columns");
    return 0;
}

extern "C" int sm_cuda_gptq_update(sm_cuda_gptq *g, int64_t i1, int64_t i2, const double *E, int64_t lde) {
    const int64_t n = g->n, rows = g->rows, k = i2 - i1;
    if (i1 < 0 || k <= 0 || i2 > n || lde < k) return sm_error("CUDA: bad batch [%lld, %lld)", (long long)i1, (long long)i2);
    if (i2 == n) return 0;
    if (rows * lde > g->e_cap) {
        cudaFree(g->E);
        g->E = NULL;
        g->e_cap = 0;
        if (dev_alloc((void **)&g->E, sizeof(double) * (size_t)(rows * lde))) return -1;
        g->e_cap = rows * lde;
    }
    CU(cudaMemcpy(g->E, E, sizeof(double) * (size_t)(rows * lde), cudaMemcpyHostToDevice), "upload the errors");
    // row-major W[:, i2:] -= E U[i1:i2, i2:]; column-major: W^T[i2:, :] -= U[i1:i2, i2:]^T E^T with
    // U^T[i2:, i1:i2] at U + i1*n + i2 (ld n), E^T k x rows (ld lde), W^T[i2:, :] at W + i2 (ld n)
    const double minus_one = -1.0, one = 1.0;
    BLAS(cublasDgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)(n - i2), (int)rows, (int)k, &minus_one, g->U + i1 * n + i2,
                     (int)n, g->E, (int)lde, &one, g->W + i2, (int)n),
         "DGEMM (lazy-batch update)");
    return 0;
}

extern "C" int sm_cuda_gptq_loss(sm_cuda_gptq *g, const double *D, int64_t m, double *out) {
    const int64_t n = g->n;
    if (!g->H) return sm_error("CUDA: no Hessian was uploaded for the loss report");
    const double one = 1.0, zero = 0.0;
    double total = 0.0;
    for (int64_t r0 = 0; r0 < m; r0 += LOSS_ROWS) {
        const int64_t mr = m - r0 < LOSS_ROWS ? m - r0 : LOSS_ROWS;
        CU(cudaMemcpy(g->D, D + r0 * n, sizeof(double) * (size_t)(mr * n), cudaMemcpyHostToDevice), "upload D");
        // column-major D^T (n x mr); T^T = H D^T = (D H)^T since H is symmetric
        BLAS(cublasDgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)mr, (int)n, &one, g->H, (int)n, g->D, (int)n,
                         &zero, g->T, (int)n),
             "DGEMM (loss)");
        double part = 0.0;
        BLAS(cublasDdot(g->blas, (int)(n * mr), g->T, 1, g->D, 1, &part), "DDOT (loss)");
        total += part;
    }
    *out = total;
    return 0;
}

// ---- the device's measured DGEMM rate (benchmarks report GPTQ's speed next to it) ----

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dgemm_time(cublasHandle_t blas, double *a, double *c, int64_t n, int reps, double *seconds) {
    const double one = 1.0, zero = 0.0;
    CU(cudaMemset(a, 0, sizeof(double) * (size_t)(n * n)), "clear");
    BLAS(cublasDgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)n, (int)n, &one, a, (int)n, a, (int)n, &zero, c,
                     (int)n),
         "DGEMM (warm-up)");
    CU(cudaDeviceSynchronize(), "synchronize");
    const double t0 = wall_now();
    for (int r = 0; r < reps; r++)
        BLAS(cublasDgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)n, (int)n, &one, a, (int)n, a, (int)n, &zero, c,
                         (int)n),
             "DGEMM");
    CU(cudaDeviceSynchronize(), "synchronize");
    *seconds = wall_now() - t0;
    return 0;
}

extern "C" int sm_cuda_dgemm_rate(int64_t n, int reps, double *gflops) {
    *gflops = 0;
    if (n <= 0 || n > 32768 || reps < 1) return sm_error("CUDA: bad DGEMM benchmark size");
    cublasHandle_t blas = NULL;
    double *a = NULL, *c = NULL, seconds = 0;
    int rc = cublasCreate(&blas) ? sm_error("cuBLAS: create handle failed") : 0;
    if (!rc) rc = dev_alloc((void **)&a, sizeof(double) * (size_t)(n * n));
    if (!rc) rc = dev_alloc((void **)&c, sizeof(double) * (size_t)(n * n));
    if (!rc) rc = dgemm_time(blas, a, c, n, reps, &seconds);
    cudaFree(a);
    cudaFree(c);
    if (blas) cublasDestroy(blas);
    if (!rc) *gflops = 2.0 * (double)n * (double)n * (double)n * reps / seconds * 1e-9;
    return rc;
}

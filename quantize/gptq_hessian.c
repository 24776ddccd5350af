/* gptq_hessian.c - the Hessian accumulator of GPTQ: S = sum over calibration tokens of
 * x x^T for one linear layer's input, in double, and H = 2/n S.
 *
 * Each batch of rows is widened to double (a product of two floats is exact in double) and
 * added with the symmetric rank-k update S += X^T X on the lower triangle (gq_gemm: cache-
 * blocked, OpenMP, each element summed by one thread in token order), so S does not depend on
 * the thread count, the ISA or how the tokens were split into batches.
 *
 * On the GPU (sm_hessian_new_on with SM_DEVICE_CUDA) S lives in device memory and each batch
 * is a cuBLAS DSYRK; the host matrix is allocated and filled when S is first read back, and
 * any tokens added after that are accumulated on the CPU. The device also sums |x| per column
 * (AWQ's statistics), read back with S. */
#include "quantize/gptq_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HESS_MAX_COLS (1 << 17)
#define HESS_CHUNK_BYTES ((size_t)64 << 20) /* widened rows per rank-k update */

struct sm_hessian {
    int64_t cols, n;
    double *s;       /* cols x cols; lower triangle accumulates; H in place once finalized */
    sm_cuda_syrk *dev; /* the device accumulator (s is NULL until it is read back) */
    double *abs;       /* read back from the device with S: per column, the sum of |x| */
    bool finalized;
};

sm_hessian *sm_hessian_new_on(int64_t cols, sm_device device) {
    if (cols <= 0 || cols > HESS_MAX_COLS)
        return sm_error("hessian: %lld columns is out of range (1..%d)", (long long)cols, HESS_MAX_COLS), NULL;
    sm_hessian *h = calloc(1, sizeof *h);
    if (!h) return sm_error("hessian: out of memory"), NULL;
    h->cols = cols;
    if (device == SM_DEVICE_CUDA) {
        const char *why = "";
        if (!sm_cuda_available(&why)) {
            free(h);
            return sm_error("hessian: no usable CUDA device (%s)", why), NULL;
        }
        if (sm_cuda_syrk_new(cols, &h->dev)) {
            free(h);
            return sm_error_ctx("hessian"), NULL;
        }
        return h;
    }
    if (!(h->s = calloc((size_t)(cols * cols), sizeof(double)))) {
        free(h);
        return sm_error("hessian: out of memory for %lld x %lld doubles", (long long)cols, (long long)cols), NULL;
    }
    return h;
}

sm_hessian *sm_hessian_new(int64_t cols) { return sm_hessian_new_on(cols, SM_DEVICE_CPU); }

void sm_hessian_free(sm_hessian *h) {
    if (!h) return;
    sm_cuda_syrk_free(h->dev);
    free(h->s);
    free(h->abs);
    free(h);
}

/* Bring a device accumulator's S to the host (later tokens are added on the CPU). */
static int to_host(sm_hessian *h) {
    if (!h->dev) return 0;
    if (!(h->s = malloc(sizeof(double) * (size_t)(h->cols * h->cols))))
        return sm_error("hessian: out of memory for %lld x %lld doubles", (long long)h->cols, (long long)h->cols);
    if (!(h->abs = malloc(sizeof(double) * (size_t)h->cols))) {
        free(h->s);
        h->s = NULL;
        return sm_error("hessian: out of memory");
    }
    if (sm_cuda_syrk_read(h->dev, h->s) || sm_cuda_syrk_read_abs(h->dev, h->abs)) {
        free(h->s);
        free(h->abs);
        h->s = h->abs = NULL;
        return sm_error_ctx("hessian");
    }
    sm_cuda_syrk_free(h->dev);
    h->dev = NULL;
    return 0;
}

int64_t sm_hessian_cols(const sm_hessian *h) { return h->cols; }
sm_cuda_syrk *sm_hessian_device(sm_hessian *h) { return h->finalized ? NULL : h->dev; }
const double *sm_hessian_device_abs_sums(const sm_hessian *h) { return h->abs; }
void sm_hessian_count(sm_hessian *h, int64_t n_tok) { h->n += n_tok; }
int64_t sm_hessian_tokens(const sm_hessian *h) { return h->n; }

/* Element (t, j) of a batch is x[t*ts + j*cs]: token-major (ts = ld, cs = 1) or feature-major
 * (ts = 1, cs = ld). The widened rows are the same either way, so is S. */
static int add_strided(sm_hessian *h, const float *x, int64_t n_tok, int64_t ts, int64_t cs) {
    if (h->finalized) return sm_error("hessian: tokens added after the matrix was taken");
    const int64_t cols = h->cols;
    if (n_tok == 0) return 0;
    int64_t chunk = (int64_t)(HESS_CHUNK_BYTES / sizeof(double)) / cols;
    if (chunk < 1) chunk = 1;
    if (chunk > n_tok) chunk = n_tok;
    if (h->dev) { /* the device refuses non-finite values as it widens them */
        if (cs != 1) return sm_error("hessian: a GPU accumulator takes token-major rows");
        if (sm_cuda_syrk_add(h->dev, x, n_tok, ts)) return sm_error_ctx("hessian");
        h->n += n_tok;
        return 0;
    }
    double *xd = malloc(sizeof(double) * (size_t)(chunk * cols));
    if (!xd) return sm_error("hessian: out of memory for a batch of %lld rows", (long long)chunk);
    int rc = 0;
    for (int64_t t0 = 0; t0 < n_tok && !rc; t0 += chunk) {
        const int64_t nt = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        /* feature-major input is read along its rows (contiguous tokens) */
        for (int64_t a = 0; a < (cs == 1 ? nt : cols) && !rc; a++)
            for (int64_t b = 0; b < (cs == 1 ? cols : nt); b++) {
                const int64_t t = cs == 1 ? a : b, j = cs == 1 ? b : a;
                const float v = x[(t0 + t) * ts + j * cs];
                if (!isfinite(v)) {
                    rc = sm_error("hessian: input row %lld, column %lld is %g (must be finite)", (long long)(t0 + t),
                                  (long long)j, (double)v);
                    break;
                }
                xd[t * cols + j] = v;
            }
        if (rc) break;
        gq_gemm_args g = {.m = cols, .n = cols, .k = nt, .sign = 1.0, .a = xd, .a_rs = 1, .a_cs = cols,
                          .b = xd, .b_rs = cols, .b_cs = 1, .c = h->s, .ldc = cols, .lower = true, .parallel = true};
        rc = gq_gemm(&g);
    }
    free(xd);
    if (rc) return -1;
    h->n += n_tok;
    return 0;
}

int sm_hessian_add(sm_hessian *h, const float *x, int64_t n_tok, int64_t ld) {
    if (n_tok < 0 || ld < h->cols) return sm_error("hessian: bad batch (%lld rows, stride %lld)", (long long)n_tok, (long long)ld);
    return add_strided(h, x, n_tok, ld, 1);
}

int sm_hessian_add_feature_major(sm_hessian *h, const float *x, int64_t n_tok, int64_t ld) {
    if (n_tok < 0 || ld < n_tok) return sm_error("hessian: bad batch (%lld tokens, stride %lld)", (long long)n_tok, (long long)ld);
    return add_strided(h, x, n_tok, 1, ld);
}

int sm_hessian_merge(sm_hessian *h, const sm_hessian *o) {
    if (h->finalized || o->finalized) return sm_error("hessian: merge after the matrix was taken");
    if (h->cols != o->cols)
        return sm_error("hessian: merging %lld columns into %lld", (long long)o->cols, (long long)h->cols);
    if (to_host(h) || to_host((sm_hessian *)o)) return -1; /* o's content is unchanged */
    const int64_t n = h->cols;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) h->s[i * n + j] += o->s[i * n + j];
    h->n += o->n;
    return 0;
}

const double *sm_hessian_matrix(sm_hessian *h) {
    if (h->finalized) return h->s;
    if (to_host(h)) return NULL;
    const int64_t n = h->cols;
    const double scale = h->n ? 2.0 / (double)h->n : 0.0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < i; j++) {
            const double v = h->s[i * n + j] * scale;
            h->s[i * n + j] = v;
            h->s[j * n + i] = v;
        }
        h->s[i * n + i] *= scale;
    }
    h->finalized = true;
    return h->s;
}

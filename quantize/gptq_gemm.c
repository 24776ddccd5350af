/* gptq_gemm.c - the double-precision GEMM behind GPTQ (C += sign * A * B with arbitrary
 * strides, optionally only the lower triangle), the scalar micro-kernels, and the choice of
 * the kernels for the active ISA.
 *
 * Goto-style blocking: C is cut into MC x NC tiles spread over the threads; for each KC-slice
 * of the inner dimension a tile packs its slices of A (MR-row strips, sign folded in) and B
 * (NR-column strips) and runs the MR x NR micro-kernel over them. Each element of C is
 * updated by one thread with fma() in k order whatever the tiling, so the result does not
 * depend on the thread count or on the ISA. */
#include "quantize/gptq_internal.h"

#include "quantize/codec_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define GQ_MC 96   /* multiple of every MR */
#define GQ_NC 480  /* multiple of every NR */
#define GQ_KC 256

static void tile_scalar(int64_t k, const double *ap, const double *bp, double *c, int64_t ldc) {
    double acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = c[r * ldc + j];
    for (int64_t p = 0; p < k; p++, ap += 4, bp += 4)
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 4; j++) acc[r][j] = fma(ap[r], bp[j], acc[r][j]);
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++) c[r * ldc + j] = acc[r][j];
}

static void axpy_scalar(int64_t n, double alpha, const double *x, double *y) {
    for (int64_t i = 0; i < n; i++) y[i] = fma(alpha, x[i], y[i]);
}

const gq_kernels gq_kernels_scalar = {4, 4, tile_scalar, axpy_scalar, "scalar"};

const gq_kernels *gq_kernels_get(void) {
#if defined(__x86_64__)
    switch (q_active_isa()) {
    case SM_ISA_AVX512: return &gq_kernels_avx512;
    case SM_ISA_AVX2: return &gq_kernels_avx2;
    default: break;
    }
#endif
    return &gq_kernels_scalar;
}

/* A[i0 .. i0+mc) x [p0 .. p0+kc) into MR-row strips: ap[(strip*kc + kk)*mr + ii], times sign,
 * zero-padded to whole strips. */
static void pack_a(const gq_gemm_args *g, int mr, int64_t i0, int64_t mc, int64_t p0, int64_t kc, double *ap) {
    for (int64_t s = 0; s < mc; s += mr, ap += kc * mr) {
        const int64_t rows = mc - s < mr ? mc - s : mr;
        const double *a = g->a + (i0 + s) * g->a_rs + p0 * g->a_cs;
        if (g->a_cs == 1) {
            for (int64_t ii = 0; ii < mr; ii++)
                for (int64_t kk = 0; kk < kc; kk++) ap[kk * mr + ii] = ii < rows ? g->sign * a[ii * g->a_rs + kk] : 0.0;
        } else {
            for (int64_t kk = 0; kk < kc; kk++)
                for (int64_t ii = 0; ii < mr; ii++)
                    ap[kk * mr + ii] = ii < rows ? g->sign * a[ii * g->a_rs + kk * g->a_cs] : 0.0;
        }
    }
}

/* B[p0 .. p0+kc) x [j0 .. j0+nc) into NR-column strips: bp[(strip*kc + kk)*nr + jj]. */
static void pack_b(const gq_gemm_args *g, int nr, int64_t j0, int64_t nc, int64_t p0, int64_t kc, double *bp) {
    for (int64_t s = 0; s < nc; s += nr, bp += kc * nr) {
        const int64_t cols = nc - s < nr ? nc - s : nr;
        const double *b = g->b + p0 * g->b_rs + (j0 + s) * g->b_cs;
        if (g->b_cs == 1) {
            for (int64_t kk = 0; kk < kc; kk++)
                for (int64_t jj = 0; jj < nr; jj++) bp[kk * nr + jj] = jj < cols ? b[kk * g->b_rs + jj] : 0.0;
        } else {
            for (int64_t jj = 0; jj < nr; jj++)
                for (int64_t kk = 0; kk < kc; kk++)
                    bp[kk * nr + jj] = jj < cols ? b[kk * g->b_rs + jj * g->b_cs] : 0.0;
        }
    }
}

/* One MC x NC tile of C over the whole inner dimension. */
static void run_tile(const gq_gemm_args *g, const gq_kernels *kr, int64_t i0, int64_t j0, double *ap, double *bp,
                     double *ct) {
    const int mr = kr->mr, nr = kr->nr;
    const int64_t mc = g->m - i0 < GQ_MC ? g->m - i0 : GQ_MC;
    const int64_t nc = g->n - j0 < GQ_NC ? g->n - j0 : GQ_NC;
    for (int64_t p0 = 0; p0 < g->k; p0 += GQ_KC) {
        const int64_t kc = g->k - p0 < GQ_KC ? g->k - p0 : GQ_KC;
        pack_b(g, nr, j0, nc, p0, kc, bp);
        pack_a(g, mr, i0, mc, p0, kc, ap);
        for (int64_t js = 0; js < nc; js += nr) {
            const int64_t nn = nc - js < nr ? nc - js : nr;
            for (int64_t is = 0; is < mc; is += mr) {
                const int64_t mm = mc - is < mr ? mc - is : mr;
                const int64_t row = i0 + is, col = j0 + js;
                if (g->lower && col > row + mm - 1) continue; /* strictly above the diagonal */
                double *c = g->c + row * g->ldc + col;
                const double *a = ap + is * kc, *b = bp + js * kc;
                if (mm == mr && nn == nr) {
                    kr->tile(kc, a, b, c, g->ldc);
                } else {
                    memset(ct, 0, sizeof(double) * (size_t)(mr * nr));
                    for (int64_t r = 0; r < mm; r++) memcpy(ct + r * nr, c + r * g->ldc, sizeof(double) * (size_t)nn);
                    kr->tile(kc, a, b, ct, nr);
                    for (int64_t r = 0; r < mm; r++) memcpy(c + r * g->ldc, ct + r * nr, sizeof(double) * (size_t)nn);
                }
            }
        }
    }
}

int gq_gemm(const gq_gemm_args *g) {
    if (g->m <= 0 || g->n <= 0 || g->k <= 0) return 0;
    const gq_kernels *kr = gq_kernels_get();
    const int64_t mt = (g->m + GQ_MC - 1) / GQ_MC, nt = (g->n + GQ_NC - 1) / GQ_NC;
    const int64_t ntask = mt * nt;
    int nth = g->parallel ? sm_num_threads() : 1;
    if (nth > ntask) nth = (int)ntask;
    if (nth < 1) nth = 1;
    int failed = 0;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        double *ap = aligned_alloc(64, sizeof(double) * GQ_MC * GQ_KC);
        double *bp = aligned_alloc(64, sizeof(double) * GQ_KC * GQ_NC);
        double *ct = aligned_alloc(64, sizeof(double) * 8 * 32);
        if (!ap || !bp || !ct) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        int ok = !__atomic_load_n(&failed, __ATOMIC_RELAXED);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntask; t++) {
            if (!ok) continue;
            const int64_t i0 = (t / nt) * GQ_MC, j0 = (t % nt) * GQ_NC;
            if (g->lower && j0 > i0 + GQ_MC - 1) continue;
            run_tile(g, kr, i0, j0, ap, bp, ct);
        }
        free(ap);
        free(bp);
        free(ct);
    }
    if (failed) return sm_error("gptq: out of memory for GEMM buffers");
    return 0;
}

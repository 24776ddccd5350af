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

#define GQ_MC 192 /* multiple of every MR */
#define GQ_NC 480 /* multiple of every NR */
#define GQ_KC 128

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
    switch (sm_isa_active()) {
    case SM_ISA_AVX512: return &gq_kernels_avx512;
    case SM_ISA_AVX2: return &gq_kernels_avx2;
    default: break;
    }
#endif
    return &gq_kernels_scalar;
}

/* rows x kc of a row-major source (row stride rs) into one strip: dst[kk*w + ii] = sign *
 * src[ii*rs + kk]. Inlined with a constant w, so the inner loop is fully unrolled. */
static inline __attribute__((always_inline)) void strip_from_rows(int w, int64_t rows, int64_t kc, double sign,
                                                                  const double *src, int64_t rs, double *dst) {
    if (rows == w) {
        for (int64_t kk = 0; kk < kc; kk++)
            for (int ii = 0; ii < w; ii++) dst[kk * w + ii] = sign * src[ii * rs + kk];
    } else {
        for (int64_t kk = 0; kk < kc; kk++)
            for (int ii = 0; ii < w; ii++) dst[kk * w + ii] = ii < rows ? sign * src[ii * rs + kk] : 0.0;
    }
}

static void strips_from_rows(int w, int64_t n, int64_t kc, double sign, const double *src, int64_t rs, double *dst) {
    for (int64_t s = 0; s < n; s += w, src += w * rs, dst += w * kc) {
        const int64_t rows = n - s < w ? n - s : w;
        switch (w) { /* constant widths for the unrolled loops */
        case 4: strip_from_rows(4, rows, kc, sign, src, rs, dst); break;
        case 8: strip_from_rows(8, rows, kc, sign, src, rs, dst); break;
        case 12: strip_from_rows(12, rows, kc, sign, src, rs, dst); break;
        case 24: strip_from_rows(24, rows, kc, sign, src, rs, dst); break;
        default: strip_from_rows(w, rows, kc, sign, src, rs, dst); break;
        }
    }
}

/* kc rows of n contiguous elements (row stride rs) into strips of width w:
 * dst[(j/w)*kc*w + kk*w + j%w] = sign * src[kk*rs + j]. */
static void strips_from_cols(int w, int64_t n, int64_t kc, double sign, const double *src, int64_t rs, double *dst) {
    const int64_t full = n / w * w;
    for (int64_t kk = 0; kk < kc; kk++) {
        const double *row = src + kk * rs;
        double *d = dst + kk * w;
        for (int64_t j = 0; j < full; j += w, d += kc * w)
            for (int jj = 0; jj < w; jj++) d[jj] = sign * row[j + jj];
        if (full < n)
            for (int jj = 0; jj < w; jj++) d[jj] = full + jj < n ? sign * row[full + jj] : 0.0;
    }
}

/* A[i0 .. i0+mc) x [p0 .. p0+kc) into MR-row strips: ap[(strip*kc + kk)*mr + ii], times sign,
 * zero-padded to whole strips; the loops follow A's contiguous dimension. */
static void pack_a(const gq_gemm_args *g, int mr, int64_t i0, int64_t mc, int64_t p0, int64_t kc, double *ap) {
    const double *a = g->a + i0 * g->a_rs + p0 * g->a_cs;
    if (g->a_cs == 1) strips_from_rows(mr, mc, kc, g->sign, a, g->a_rs, ap);
    else if (g->a_rs == 1) strips_from_cols(mr, mc, kc, g->sign, a, g->a_cs, ap);
    else
        for (int64_t i = 0; i < (mc + mr - 1) / mr * mr; i++)
            for (int64_t kk = 0; kk < kc; kk++)
                ap[(i / mr) * kc * mr + kk * mr + i % mr] = i < mc ? g->sign * a[i * g->a_rs + kk * g->a_cs] : 0.0;
}

/* B[p0 .. p0+kc) x [j0 .. j0+nc) into NR-column strips: bp[(strip*kc + kk)*nr + jj], zero-padded. */
static void pack_b(const gq_gemm_args *g, int nr, int64_t j0, int64_t nc, int64_t p0, int64_t kc, double *bp) {
    const double *b = g->b + p0 * g->b_rs + j0 * g->b_cs;
    if (g->b_cs == 1) strips_from_cols(nr, nc, kc, 1.0, b, g->b_rs, bp);
    else if (g->b_rs == 1) strips_from_rows(nr, nc, kc, 1.0, b, g->b_cs, bp);
    else
        for (int64_t j = 0; j < (nc + nr - 1) / nr * nr; j++)
            for (int64_t kk = 0; kk < kc; kk++)
                bp[(j / nr) * kc * nr + kk * nr + j % nr] = j < nc ? b[kk * g->b_rs + j * g->b_cs] : 0.0;
}

/* Rows [r0, r1) of C (whole MC tiles) x one NC column tile, over the whole inner dimension:
 * each KC slice of B is packed once and used by every row tile. */
static void run_task(const gq_gemm_args *g, const gq_kernels *kr, int64_t r0, int64_t r1, int64_t j0, double *ap,
                     double *bp, double *ct) {
    const int mr = kr->mr, nr = kr->nr;
    const int64_t nc = g->n - j0 < GQ_NC ? g->n - j0 : GQ_NC;
    if (g->lower && j0 > r1 - 1) return; /* strictly above the diagonal */
    for (int64_t p0 = 0; p0 < g->k; p0 += GQ_KC) {
        const int64_t kc = g->k - p0 < GQ_KC ? g->k - p0 : GQ_KC;
        pack_b(g, nr, j0, nc, p0, kc, bp);
        for (int64_t i0 = r0; i0 < r1; i0 += GQ_MC) {
            const int64_t mc = r1 - i0 < GQ_MC ? r1 - i0 : GQ_MC;
            if (g->lower && j0 > i0 + mc - 1) continue;
            if (g->a_lower && p0 > i0 + mc - 1) continue; /* A's slice is all zero here */
            pack_a(g, mr, i0, mc, p0, kc, ap);
            for (int64_t js = 0; js < nc; js += nr) {
                const int64_t nn = nc - js < nr ? nc - js : nr;
                for (int64_t is = 0; is < mc; is += mr) {
                    const int64_t mm = mc - is < mr ? mc - is : mr;
                    const int64_t row = i0 + is, col = j0 + js;
                    if (g->lower && col > row + mm - 1) continue;
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
}

int gq_gemm(const gq_gemm_args *g) {
    if (g->m <= 0 || g->n <= 0 || g->k <= 0) return 0;
    const gq_kernels *kr = gq_kernels_get();
    const int64_t mt = (g->m + GQ_MC - 1) / GQ_MC, nt = (g->n + GQ_NC - 1) / GQ_NC;
    int nth = g->parallel ? sm_num_threads() : 1;
    /* tasks: a column tile x a group of row tiles; groups as large as leave ~4 tasks per
     * thread (the tiling never changes an element's arithmetic, only who computes it) */
    int64_t group = mt * nt / (4 * (int64_t)nth);
    if (group < 1) group = 1;
    if (group > mt) group = mt;
    const int64_t ng = (mt + group - 1) / group, ntask = ng * nt;
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
            const int64_t r0 = (t / nt) * group * GQ_MC, r1 = r0 + group * GQ_MC < g->m ? r0 + group * GQ_MC : g->m;
            run_task(g, kr, r0, r1, (t % nt) * GQ_NC, ap, bp, ct);
        }
        free(ap);
        free(bp);
        free(ct);
    }
    if (failed) return sm_error("gptq: out of memory for GEMM buffers");
    return 0;
}

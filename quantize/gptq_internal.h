/* gptq_internal.h - (internal) what the GPTQ files share: the double-precision GEMM with its
 * per-ISA micro-kernels, the Cholesky / triangular-inverse routines, and the quantizer grids.
 *
 * Determinism: every output element of every routine here is computed by one thread as a
 * sequence of fused multiply-adds in a fixed order (k ascending), whatever the thread count,
 * the tiling or the ISA (the scalar kernels call fma()). So GPTQ's results are bit-identical
 * for any thread count and on scalar, AVX2 and AVX-512 machines. */
#ifndef SMELT_QUANTIZE_GPTQ_INTERNAL_H
#define SMELT_QUANTIZE_GPTQ_INTERNAL_H

#include "quantize/quantize.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- micro-kernels (gptq_gemm.c scalar, gptq_gemm_avx2.c, gptq_gemm_avx512.c) ---- */

/* c[MR x NR] (row stride ldc) = fma chains over k of ap[k*MR + r] * bp[k*NR + j] added to c. */
typedef void (*gq_tile_fn)(int64_t k, const double *ap, const double *bp, double *c, int64_t ldc);
/* y[i] = fma(alpha, x[i], y[i]) for i < n. */
typedef void (*gq_axpy_fn)(int64_t n, double alpha, const double *x, double *y);

typedef struct gq_kernels {
    int mr, nr;
    gq_tile_fn tile;
    gq_axpy_fn axpy;
    const char *name;
} gq_kernels;

/* The kernels of the active ISA (sm_isa_active(), kernels/kernels.h). */
const gq_kernels *gq_kernels_get(void);
extern const gq_kernels gq_kernels_scalar;
#if defined(__x86_64__)
extern const gq_kernels gq_kernels_avx2;
extern const gq_kernels gq_kernels_avx512;
#endif

/* ---- GEMM (gptq_gemm.c) ----
 * C[M x N] += sign * A[M x K] * B[K x N], sign = +1 or -1. Element (i,k) of A is at
 * a[i*a_rs + k*a_cs], (k,j) of B at b[k*b_rs + j*b_cs], (i,j) of C at c[i*ldc + j].
 * lower: only tiles that meet the lower triangle (j <= i) are computed (tiles crossing the
 * diagonal are computed whole). a_lower: A is lower triangular (A[i][k] = 0 for k > i), and the
 * inner-dimension slices that are zero for a whole row tile are skipped (the tiles are fixed,
 * so this does not depend on the thread count). parallel: spread tiles over sm_num_threads()
 * threads; false when called from inside a parallel region. Returns -1 (sm_error) if out of
 * memory. */
typedef struct gq_gemm_args {
    int64_t m, n, k;
    double sign;
    const double *a;
    int64_t a_rs, a_cs;
    const double *b;
    int64_t b_rs, b_cs;
    double *c;
    int64_t ldc;
    bool lower;
    bool a_lower;
    bool parallel;
} gq_gemm_args;
int gq_gemm(const gq_gemm_args *g);

/* ---- dense linear algebra (gptq_linalg.c), row-major n x n ---- */

/* u = the upper Cholesky factor of A^-1 (A^-1 = U^T U), A symmetric positive definite; a is
 * used as workspace (destroyed; u == a computes in place). u gets n*n doubles (strictly lower
 * part zero). On
 * SM_DEVICE_CUDA the factorization and the inverse run on the GPU (cuSOLVER, cuBLAS). */
int gq_inverse_cholesky_upper(double *a, int64_t n, double *u, sm_device device);

/* ---- quantizer grids (gptq_grid.c) ----
 * A grid gives every (row, group of columns) a set of parameters fitted on the current
 * weights of that group, then maps a weight to its nearest representable value and code. */
typedef struct gq_grid {
    bool is_int;        /* the INT grid of HF GPTQ checkpoints; else a GGUF block type */
    sm_type type;       /* GGUF block type */
    int maxq;           /* INT */
    bool sym, zero_min1;
    int group;          /* columns per group (INT: group size; GGUF: the block size) */
    int64_t rows, n_groups;
    /* INT: per (group, row) parameters, [n_groups][rows] */
    uint16_t *scale_h;
    int32_t *zero;
    /* GGUF: the packed output rows (params written at fit time, codes at the end) */
    uint8_t *packed;
    size_t row_bytes;
    /* active parameters of each row's current group, decoded for quantizing */
    float *act;         /* [rows][GQ_ACT] */
} gq_grid;

#define GQ_ACT 32 /* floats of decoded per-row active parameters (Q2_K: 16 scales and 16 mins) */

/* Set up a grid for a rows x cols weight; allocates the parameter storage. -1 on a bad
 * option (sm_error). */
int gq_grid_init(gq_grid *g, const sm_gptq_opts *o, int64_t rows, int64_t cols);
void gq_grid_free(gq_grid *g);
/* Fit row r's group gi from the n current weights x (n <= group) and importance imp (NULL, or
 * n weights with a positive sum: GGUF grids only), and make it row r's active group. -1 (sm_error) if a scale overflows f16. */
int gq_grid_fit(gq_grid *g, int64_t r, int64_t gi, const double *x, const float *imp, int n);
/* Make group gi (already fitted) row r's active group (static groups). */
void gq_grid_activate(gq_grid *g, int64_t r, int64_t gi);
/* The representable value nearest to x in row r's active group at column c (original
 * column index; selects the GGUF sub-block); *code gets its code. */
double gq_grid_quant(const gq_grid *g, int64_t r, int64_t c, double x, uint8_t *code);
/* GGUF: write the codes of row r (cols codes, original order) into its packed blocks. */
void gq_grid_pack_row(gq_grid *g, int64_t r, const uint8_t *codes);
/* How many sweeps GPTQ makes on this grid (o->fit_passes, or the grid's default: 2 for Q2_K
 * and Q3_K, whose 2/3-bit levels make the scales fitted before the sweep matter most; 1
 * elsewhere and on the HF grid, where a group is at most a few columns of one batch). */
int gq_fit_passes(const sm_gptq_opts *o, const gq_grid *g);

#endif

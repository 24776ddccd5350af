/* kernels_internal.h - what each ISA variant of the matrix kernels provides to the driver in
 * matmul.c. One variant per file: matmul_scalar.c, matmul_avx2.c, matmul_avx512.c.
 *
 * The matrix-matrix product works on activations packed into "panels" of tpw tokens:
 * xt[k*tpw + j] holds x[t0 + j][k] (64-byte aligned, zero-padded past the last token). A
 * tile multiplies mr weight rows (float, row r at w + r*ldw) with one panel over kb
 * columns, accumulating into c[r*tpw + j] (zeroed first when `first`). Every element of c
 * is a sequential sum over k with one accumulator, so its value does not depend on the
 * tile it was computed in. */
#ifndef SMELT_KERNELS_INTERNAL_H
#define SMELT_KERNELS_INTERNAL_H

#include "kernels.h"

typedef struct sm_gemm_isa {
    int mr;  /* weight rows per register tile (the largest `mr` tile accepts) */
    int tpw; /* tokens per panel */
    void (*tile)(int mr, const float *w, int64_t ldw, const float *xt, int64_t kb, float *c, bool first);
    /* sum of a[i]*b[i] in a fixed order */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* plain conversions (src may be unaligned) */
    void (*f16_to_f32)(const void *src, float *dst, int64_t n);
    void (*bf16_to_f32)(const void *src, float *dst, int64_t n);
} sm_gemm_isa;

extern const sm_gemm_isa sm_gemm_scalar;
#if defined(__x86_64__)
extern const sm_gemm_isa sm_gemm_avx2;
extern const sm_gemm_isa sm_gemm_avx512;
#endif

/* The variant for the ISA now in effect. */
const sm_gemm_isa *sm_gemm_current(void);

#endif

/* kernels_internal.h - what each ISA variant of the matrix kernels provides to the driver in
 * matmul.c. One variant per file: matmul_scalar.c, matmul_avx2.c, matmul_avx512.c.
 *
 * A tile multiplies mr weight rows (float, row r at w + r*ldw) with a panel of `valid`
 * (<= tpw) tokens of feature-major activations (feature k of token j at x[k*ldx + j]) over
 * kb features, accumulating into y[r*ldy + j] (overwriting it when `first`). Every output
 * element is a sequential sum over k with one accumulator, so its value does not depend on
 * the tile or the panel it was computed in. */
#ifndef SMELT_KERNELS_INTERNAL_H
#define SMELT_KERNELS_INTERNAL_H

#include "kernels.h"

typedef struct sm_gemm_isa {
    int mr;  /* weight rows per register tile (the largest `mr` tile accepts) */
    int tpw; /* tokens per panel */
    void (*tile)(int mr, const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t kb, int valid, float *y,
                 int64_t ldy, bool first);
    /* sum of a[i]*b[i] in a fixed order; the _f16/_bf16 forms read a as stored halves
     * (possibly unaligned) and convert on the fly */
    float (*dot)(const float *a, const float *b, int64_t n);
    float (*dot_f16)(const void *a, const float *b, int64_t n);
    float (*dot_bf16)(const void *a, const float *b, int64_t n);
    /* plain conversions (src may be unaligned) */
    void (*f16_to_f32)(const void *src, float *dst, int64_t n);
    void (*bf16_to_f32)(const void *src, float *dst, int64_t n);
    /* element-wise math (kernels.h: sm_vec_exp, sm_vec_silu_mul) */
    void (*exp)(float *x, int64_t n);
    void (*silu_mul)(float *g, const float *u, int64_t n);
    /* block types dequantized with vectors, the same bits as the codecs' dequantizers: 0 if
     * done, 1 if the type has no vector form here (NULL: none has) */
    int (*dequant)(sm_type type, const void *src, float *dst, int64_t n);
    /* *out = dot(dequantized row, x) without storing the row, the same bits as `dequant`
     * followed by `dot`: 0 if done, 1 if the type has no vector form (NULL: none has) */
    int (*qdot)(sm_type type, const void *src, const float *x, int64_t n, float *out);
} sm_gemm_isa;

extern const sm_gemm_isa sm_gemm_scalar;
#if defined(__x86_64__)
extern const sm_gemm_isa sm_gemm_avx2;
extern const sm_gemm_isa sm_gemm_avx512;
int sm_dequant_avx2(sm_type type, const void *src, float *dst, int64_t n);
int sm_dequant_avx512(sm_type type, const void *src, float *dst, int64_t n);
int sm_qdot_avx2(sm_type type, const void *src, const float *x, int64_t n, float *out);
int sm_qdot_avx512(sm_type type, const void *src, const float *x, int64_t n, float *out);
#endif

/* The variant for the ISA now in effect. */
const sm_gemm_isa *sm_gemm_current(void);

#endif

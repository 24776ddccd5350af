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
    /* the integer dot of a weight row of a type with sm_qdot_act_type() != SM_TYPE_INVALID with
     * activations quantized to that type (n elements; see sm_q8_0x below): the same bits on
     * every ISA */
    float (*qdot8)(sm_type type, const void *w, const void *xq, int64_t n);
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

/* ---- Integer dot products (kernels/qdot.c, qdot_impl.h) ----
 * Activations quantized per block as ggml's quantize_row_q8_0_ref / quantize_row_q8_K_ref do
 * (d the f16-rounded scale for Q8_0, the float 1/iscale for Q8_K; bsums: sums of 16 qs), in
 * our own layout. Weight rows of Q4_0 and Q8_0 take Q8_0 activations, Q4_K, Q5_K and Q6_K
 * take Q8_K ones, and the integer parts of the dot are exact, so only the float combination
 * of the block results can differ between ISAs: it is spelled once, below, in a fixed order.
 *   Q4_0, Q8_0: per 32-element block, 8 integer lane sums (lane i: elements 4i..4i+3, what
 *     vpmaddubsw+vpmaddwd and vpdpbusd both give) each go into float lane i as
 *     acc[i] += (float)lane[i] * (d_w * d_x); the lanes are summed by sm_qd_reduce8.
 *   Q4_K, Q5_K, Q6_K: per 256-element superblock, one exact integer sum of scale * q * x
 *     (isum) and of min * bsums (msum), combined by sm_qd_ksum. */
typedef struct sm_q8_0x { float d; int8_t qs[32]; } sm_q8_0x;
typedef struct sm_q8_Kx { float d; int16_t bsums[16]; int8_t qs[256]; } sm_q8_Kx;

/* SM_TYPE_Q8_0 or SM_TYPE_Q8_K: the activation format `wtype`'s integer dot takes;
 * SM_TYPE_INVALID: it has none (the float path multiplies it). */
sm_type sm_qdot_act_type(sm_type wtype);
/* Quantize n activations (a whole number of blocks) to `act` (sm_q8_0x or sm_q8_Kx blocks at
 * y): 0, or -1 without a message if one of them is not finite (the caller then stays on the
 * float path). Bytes of the result: */
int sm_quantize_act(sm_type act, const float *x, int64_t n, void *y);
size_t sm_act_bytes(sm_type act, int64_t n);

float sm_qdot8_scalar(sm_type type, const void *w, const void *xq, int64_t n);
#if defined(__x86_64__)
float sm_qdot8_avx2(sm_type type, const void *w, const void *xq, int64_t n);
float sm_qdot8_avx512vnni(sm_type type, const void *w, const void *xq, int64_t n);
/* vpdpbusd where the CPU has AVX512-VNNI, else the AVX2 form (the same bits) */
float sm_qdot8_avx512(sm_type type, const void *w, const void *xq, int64_t n);
#endif

/* The body of every form of sm_qdot8_*: its kernels for the three layouts, by name. */
#define SM_QDOT8_DISPATCH(type, w, xq, n, q4_0_q8_0, q6_K, q45_K)                    \
    return (type) == SM_TYPE_Q4_0 || (type) == SM_TYPE_Q8_0 ? q4_0_q8_0((type), (w), (xq), (n) / 32) \
           : (type) == SM_TYPE_Q6_K                        ? q6_K((w), (xq), (n) / 256)               \
                                                           : q45_K((type), (w), (xq), (n) / 256)

static inline float sm_qd_reduce8(const float a[8]) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}
static inline float sm_qd_ksum(float acc, float d, int32_t isum, float dmin, int32_t msum) {
    return acc + (d * (float)isum - dmin * (float)msum);
}

/* ggml's get_scale_min_k4 for the 8 sub-blocks of a Q4_K / Q5_K superblock (scales[12] at q) */
static inline void sm_qd_scales_k4(const unsigned char *q, int sc[8], int m[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

/* The variant for the ISA now in effect. */
const sm_gemm_isa *sm_gemm_current(void);

#endif

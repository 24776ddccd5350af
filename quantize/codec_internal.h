/* codec_internal.h - (internal) what the codec files share: the scale searches of
 * quantize/search.c and the per-type row quantizers and dequantizers behind codec.c.
 *
 * Every function here reproduces ggml's floating-point operations in ggml's order, so the
 * bytes come out identical. The quantize/ sources are compiled with -ffp-contract=off: a
 * fused multiply-add rounds once where ggml rounds twice. */
#ifndef SMELT_QUANTIZE_CODEC_INTERNAL_H
#define SMELT_QUANTIZE_CODEC_INTERNAL_H

#include "kernels/kernels.h"
#include "quantize/blocks.h"

#include <stdbool.h>

/* ---- scale searches (search.c), named after their ggml counterparts ---- */

/* make_qx_quants with rmse_type 1: symmetric levels L in [0, 2*nmax), weights qw or x^2. */
float q_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw);
/* make_q3_quants: symmetric levels with the iterative refinement (do_rmse) or the plain scale. */
float q_make_q3_quants(int n, int nmax, const float *x, int8_t *L, bool do_rmse);
/* make_qkx2_quants: asymmetric levels in [0, nmax] with a min; *the_min gets -min. */
float q_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);
/* make_qkx3_quants with weights (the importance-weighted variant of qkx2; squared error). */
float q_make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                         uint8_t *Laux, float rmin, float rdelta, int nstep);
/* make_qp_quants: non-negative levels in [0, nmax] for the scales of a super-block. */
float q_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights);
/* best_index_int8: the index of the level in the sorted table val[n] nearest to x. */
int q_best_index_int8(int n, const int8_t *val, float x);

/* ---- per-type codecs ----
 * A row quantizer turns one row of n floats (n a multiple of the block size) into blocks;
 * imatrix is NULL (ggml's reference quantizer) or n importance weights (ggml's weighted
 * quantizer). A dequantizer turns n elements' worth of blocks back into floats. */
typedef void (*q_row_fn)(const float *x, void *y, int64_t n, const float *imatrix);
typedef void (*q_deq_fn)(const void *x, float *y, int64_t n);

#define Q_DECLARE(t)                                                                           \
    void q_quantize_##t(const float *x, void *y, int64_t n, const float *imatrix);              \
    void q_dequantize_##t(const void *x, float *y, int64_t n);
Q_DECLARE(q4_0)
Q_DECLARE(q4_1)
Q_DECLARE(q5_0)
Q_DECLARE(q5_1)
Q_DECLARE(q8_0)
Q_DECLARE(q2_K)
Q_DECLARE(q3_K)
Q_DECLARE(q4_K)
Q_DECLARE(q5_K)
Q_DECLARE(q6_K)
Q_DECLARE(iq4_nl)
Q_DECLARE(iq4_xs)
#undef Q_DECLARE
void q_dequantize_q8_K(const void *x, float *y, int64_t n);

/* The instruction set the codecs use: sm_cpu_isa() unless q_force_isa() chose a lower one
 * (tests run every available ISA against the same golden bytes). Not thread-safe to change. */
sm_isa q_active_isa(void);
void q_force_isa(sm_isa isa);

#endif

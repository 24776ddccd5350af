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
/* The candidate scales IQ4_NL / IQ4_XS try on each side (ggml_quantize_chunk's ntry). */
#define Q_IQ4_NTRY 7
/* best_index_int8: the index of the level in the sorted table val[n] nearest to x. */
int q_best_index_int8(int n, const int8_t *val, float x);

/* ---- scalar pieces the SIMD codecs share (q_legacy.c, q2k_q3k.c, q4k_q5k.c, q6k.c, q_iq4.c) ---- */

/* Mean square of a row: sigma2 of the legacy types' weighted quantizers. */
float q_row_sigma2(const float *x, int64_t n);
/* Q5_0/Q5_1: 32 five-bit levels into qs (low nibbles) and qh (fifth bits). */
void q_pack_q5(const uint8_t *L, uint8_t *qs, uint8_t qh[4]);

/* Q4_K/Q5_K super-block scales from the 8 group scales and mins: rounded against the largest
 * (reference), or by make_qp_quants with group weight sums sw (weighted; clamp_scales: Q5_K). */
void q_k4_ref_superscales(const float *scales, const float *mins, uint16_t *dh, uint16_t *mh, uint8_t *packed);
void q_k4_weighted_superscales(const float *scales, const float *mins, const float *sw, bool clamp_scales,
                               uint16_t *dh, uint16_t *mh, uint8_t *packed);
void q_pack_q4_K(const uint8_t *L, uint8_t *qs);
void q_pack_q5_K(const uint8_t *L, uint8_t *qh, uint8_t *qs);
/* Q2_K: the 4-bit sub-scales and mins and the two super-scales, reference or weighted. */
void q_q2_K_ref_scales(const float *scales, const float *mins, block_q2_K *y);
void q_q2_K_weighted_scales(const float *scales, const float *mins, const float *sw, block_q2_K *y);
/* Q3_K: the 6-bit sub-scales and d from the 16 group scales (reference, or weighted with
 * group weight sums sw); the signed sub-scale j; hmask + low bits from levels 0..7 (L is
 * modified). */
void q_q3_K_ref_scales(const float *scales, block_q3_K *y);
void q_q3_K_weighted_scales(const float *scales, const float *sw, block_q3_K *y);
int q_q3_K_scale(const uint8_t *scales, int j);
void q_q3_K_pack(int8_t *L, block_q3_K *y);
/* Q2_K's qs (and Q3_K's low bits): 4 two-bit levels per byte. */
void q_pack_2bit(const uint8_t *L, uint8_t *qs);
/* IQ4_XS: d and the 6-bit group scales from the 8 group scales; idl gets each group's
 * inverse effective scale (0 where it is 0). */
void q_iq4_xs_scales(const float *scales, block_iq4_xs *y, float *idl);
/* IQ4 nibbles: value j and j+16 of each 32 share a byte. */
void q_pack_nibbles(const uint8_t *L, uint8_t *q4, int n);
/* Q6_K: d and the 16 sub-scales from the group scales; false (block zeroed) if all are ~0. */
bool q_q6_K_superscale(const float *scales, block_q6_K *y);
void q_pack_q6_K(const int8_t *L, block_q6_K *y);

/* ---- per-type codecs ----
 * A row quantizer turns one row of n floats (n a multiple of the block size) into blocks;
 * imatrix is NULL (ggml's reference quantizer) or n importance weights (ggml's weighted
 * quantizer). A dequantizer turns n elements' worth of blocks back into floats. */
typedef void (*q_row_fn)(const float *x, void *y, int64_t n, const float *imatrix);
typedef void (*q_deq_fn)(const void *x, float *y, int64_t n);
/* A SIMD quantizer takes nrows consecutive rows at once (it may group blocks across rows). */
typedef void (*q_rows_fn)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *imatrix);

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
Q_DECLARE(tq1_0)
Q_DECLARE(tq2_0)
Q_DECLARE(mxfp4)
Q_DECLARE(iq2_xxs)
Q_DECLARE(iq2_xs)
Q_DECLARE(iq2_s)
Q_DECLARE(iq3_xxs)
Q_DECLARE(iq3_s)
Q_DECLARE(iq1_s)
Q_DECLARE(iq1_m)
#undef Q_DECLARE
void q_dequantize_q8_K(const void *x, float *y, int64_t n);

/* SIMD quantizers (lanes_avx2.c, lanes_avx512.c): the same bytes as the scalar ones. */
#define Q_DECLARE_ISA(t, isa)                                                                  \
    void q_quantize_##t##_##isa(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *imatrix);
#define Q_DECLARE_SIMD(isa)                                                                    \
    Q_DECLARE_ISA(q4_0, isa) Q_DECLARE_ISA(q8_0, isa) Q_DECLARE_ISA(q4_K, isa)                  \
    Q_DECLARE_ISA(q5_K, isa) Q_DECLARE_ISA(q6_K, isa) Q_DECLARE_ISA(q2_K, isa)                  \
    Q_DECLARE_ISA(iq4_nl, isa) Q_DECLARE_ISA(iq4_xs, isa) Q_DECLARE_ISA(q4_1, isa)              \
    Q_DECLARE_ISA(q5_0, isa) Q_DECLARE_ISA(q5_1, isa) Q_DECLARE_ISA(q3_K, isa)
Q_DECLARE_SIMD(avx2)
Q_DECLARE_SIMD(avx512)
#undef Q_DECLARE_SIMD
#undef Q_DECLARE_ISA

#endif

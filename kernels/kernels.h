/* kernels.h - compute kernels: CPU feature detection and run-time dispatch, the matrix
 * products the runtime is built on, and the optional CUDA backend (present when built with
 * SMELT_HAVE_CUDA; every entry point has a CPU path). */
#ifndef SMELT_KERNELS_H
#define SMELT_KERNELS_H

#include "core/core.h"

typedef enum sm_isa { SM_ISA_SCALAR = 0, SM_ISA_AVX2 = 1, SM_ISA_AVX512 = 2 } sm_isa;
/* The best ISA this CPU supports (SMELT_ISA=scalar|avx2|avx512 caps it, for tests). */
sm_isa sm_cpu_isa(void);
const char *sm_isa_name(sm_isa isa);

/* 1 if a CUDA device can be used (built with CUDA and a device is present), else 0.
 * *why, if non-NULL, gets a short reason when 0. */
int sm_cuda_available(const char **why);

/* ======================================================================================
 * Matrix products (runtime section)
 * ==================================================================================== */

/* The ISA the matrix kernels use: sm_cpu_isa() unless changed with sm_kernels_set_isa.
 * sm_kernels_set_isa caps the request at what the CPU supports and returns the ISA now in
 * effect (for tests and benchmarks; not thread-safe against running products). */
sm_isa sm_kernels_isa(void);
sm_isa sm_kernels_set_isa(sm_isa isa);

/* True if weights of `type` with rows of n_in elements can be used in sm_matmul: F32, F16,
 * BF16, and the block types whose dequantizer exists, with n_in a multiple of the block. */
bool sm_matmul_supported(sm_type type, int64_t n_in);

/* Convert n elements (a whole number of blocks) of a weight row of `type` to float. */
int sm_row_to_f32(sm_type type, const void *src, float *dst, int64_t n);

/* Y = W · X with activations stored feature-major ("transposed"): row k of X holds
 * feature k of every token, tokens contiguous. For r < n_out and t < n_tok:
 *     y[r*ldy + t] = sum over k < n_in of W[r][k] * x[k*ldx + t]
 * W is n_out rows of n_in elements of `wtype`, row r at (const char *)w + r*w_stride.
 * x and y are float and must not overlap. Weights are converted to float a block at a time
 * into small per-thread buffers, never as a whole. Batches of >= 8 tokens run as
 * register-tiled matrix products that read x and write y in place (no packing); smaller
 * ones as dot products.
 *
 * Determinism: each output element is computed by one thread in a fixed order that does
 * not depend on the thread count or on which rows a thread got, so results are
 * bit-identical for any number of threads (they may differ between ISAs, and between a
 * batch of >= 8 tokens and a smaller one).
 *
 * sm_matmul runs on all OpenMP threads; sm_matmul_serial on the calling thread only (for
 * callers that parallelize over something else). Both return -1 for an unsupported type. */
int sm_matmul(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in,
              const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy);
int sm_matmul_serial(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in,
                     const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy);

#endif

// block_ops.cuh - decoder-block operations shared by the plugin's two block drivers (forward.cu,
// the whole model with its KV cache; calib_block.cu, one block for calibration), so that an
// architecture feature is one kernel used by both. Token-major activations (row t = token t).
// Internal linkage: each including file gets its own copy of the kernels.
#ifndef SMELT_CUDA_BLOCK_OPS_CUH
#define SMELT_CUDA_BLOCK_OPS_CUH

#include "check.h"

#include <math.h>
#include <stdint.h>

namespace {

// Per-head RMSNorm (Qwen3's q_norm / k_norm): head h of token t (hd floats at
// v + t*width + h*hd) divided by its rms and multiplied by w[hd]; the sum of squares in double
// in feature order, as on the CPU. One thread per (token, head).
__global__ void kop_head_norm(float *v, const float *w, int64_t n, int64_t heads, int64_t hd, int64_t width, float eps) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * heads; i += (int64_t)gridDim.x * blockDim.x) {
        float *x = v + (i / heads) * width + (i % heads) * hd;
        double ss = 0;
        for (int64_t d = 0; d < hd; d++) ss += (double)x[d] * x[d];
        const float s = (float)(1.0 / sqrt(ss / (double)hd + (double)eps));
        for (int64_t d = 0; d < hd; d++) x[d] = (x[d] * s) * w[d];
    }
}

// Apply the block's optional per-head q/k norms (NULL: the architecture has none).
static inline void block_qk_norm(float *q, float *k, const float *q_norm, const float *k_norm, int64_t n, int64_t n_head,
                                 int64_t n_head_kv, int64_t hd, float eps) {
    if (q_norm) SM_LAUNCH(kop_head_norm, grid_stride_blocks(n * n_head), 256, q, q_norm, n, n_head, hd, n_head * hd, eps);
    if (k_norm) SM_LAUNCH(kop_head_norm, grid_stride_blocks(n * n_head_kv), 256, k, k_norm, n, n_head_kv, hd, n_head_kv * hd, eps);
}

} // namespace

#endif

// check.h - error checks shared by the plugin's files: a failed CUDA, cuBLAS or cuSOLVER call
// sets the plugin's message (sm_error) and makes the enclosing function return -1.
#ifndef SMELT_CUDA_CHECK_H
#define SMELT_CUDA_CHECK_H

#include "plugin.h"
#include <cuda_runtime.h>

extern "C" {
#include "kernels/kernels.h" // sm_error
}

#define CU(call, what)                                                                          \
    do {                                                                                        \
        cudaError_t _e = (call);                                                                \
        if (_e != cudaSuccess) return sm_error("CUDA: %s: %s", what, cudaGetErrorString(_e));  \
    } while (0)
#define BLAS(call, what)                                                                        \
    do {                                                                                        \
        int _s = (int)(call);                                                                   \
        if (_s != 0) return sm_error("cuBLAS: %s failed (status %d)", what, _s);                \
    } while (0)
#define SOLVER(call, what)                                                                      \
    do {                                                                                        \
        int _s = (int)(call);                                                                   \
        if (_s != 0) return sm_error("cuSOLVER: %s failed (status %d)", what, _s);              \
    } while (0)

// device buffers: bytes, or floats (at least one element, so a size of 0 is not an error)
static inline int dev_alloc(void **p, size_t bytes) {
    *p = NULL;
    CU(cudaMalloc(p, bytes ? bytes : 1), "out of device memory");
    return 0;
}
static inline int dev_alloc_floats(float **p, int64_t n) {
    return dev_alloc((void **)p, sizeof(float) * (size_t)(n > 0 ? n : 1));
}

// blocks of 256 threads for a grid-stride kernel over n items (capped: each thread loops)
static inline unsigned grid_stride_blocks(int64_t n) {
    const int64_t b = (n + 255) / 256;
    return (unsigned)(b < 8192 ? (b > 0 ? b : 1) : 8192);
}

// kernel<<<blocks, threads>>>(args...), spelled so that the host-side emulation used by the
// tests (tests/cuda_emu/) can run the same source
#ifndef SM_LAUNCH
#define SM_LAUNCH(kernel, blocks, threads, ...) kernel<<<(blocks), (threads)>>>(__VA_ARGS__)
#endif

#endif

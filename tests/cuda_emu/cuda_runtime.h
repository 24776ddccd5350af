// cuda_runtime.h (emulation) - the few CUDA runtime calls the plugin's GPTQ code makes, on the
// host: "device" memory is host memory, kernels run as loops over blocks and threads. Lets
// tests build kernels/cuda/gptq.cu with a C++ compiler and check the host-side logic and the
// column-major bookkeeping of every call without a GPU (tests/test_gptq_cuda.c). Not a
// general CUDA emulator: only what the plugin uses, in the forms it uses them.
#ifndef SMELT_CUDA_EMU_RUNTIME_H
#define SMELT_CUDA_EMU_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SMELT_CUDA_EMU 1

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };

struct emu_dim3 {
    unsigned x, y, z;
};
inline thread_local emu_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__ static
#define __device__ static
#define SM_LAUNCH(kernel, blocks, threads, ...)                                    \
    do {                                                                           \
        gridDim = {(unsigned)(blocks), 1, 1};                                      \
        blockDim = {(unsigned)(threads), 1, 1};                                    \
        for (unsigned b_ = 0; b_ < gridDim.x; b_++)                                \
            for (unsigned t_ = 0; t_ < blockDim.x; t_++) {                         \
                blockIdx = {b_, 0, 0};                                             \
                threadIdx = {t_, 0, 0};                                            \
                kernel(__VA_ARGS__);                                               \
            }                                                                      \
    } while (0)

static inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated CUDA error" : "no error"; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
static inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = malloc(bytes);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
static inline cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
static inline cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    memset(p, v, bytes);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    memmove(dst, src, bytes);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                       size_t height, cudaMemcpyKind) {
    if (dpitch < width || spitch < width) return cudaErrorInvalidValue;
    for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

#endif

// device.cu - CUDA device discovery; a missing driver or device means "use the CPU".
#include "plugin.h"
#include <cuda_runtime.h>

extern "C" int sm_cuda_available(const char **why) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) *why = cudaGetErrorString(e);
        cudaGetLastError();
        return 0;
    }
    if (n == 0) {
        if (why) *why = "no CUDA device";
        return 0;
    }
    return 1;
}

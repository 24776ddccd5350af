// plugin_emu.cpp - the CUDA plugin's GPTQ code built against the host emulation in this
// folder (libsmelt_cuda_emu.so): tests/test_gptq_cuda.c loads it in place of libsmelt_cuda.so
// to check the GPU path's bookkeeping on machines without a GPU. The sources are the
// plugin's own, unchanged.
#include "kernels/cuda/plugin_error.cu"
#include "kernels/cuda/device.cu"
#include "kernels/cuda/gptq.cu"
#include "kernels/cuda/block_exec.cu"
#include "kernels/cuda/calib_block.cu"
#include "kernels/cuda/forward.cu"

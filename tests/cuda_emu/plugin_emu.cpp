// plugin_emu.cpp - the CUDA plugin's sources (GPTQ, the block executor and its forward and
// calibration drivers) built against the host emulation in this
// folder (libsmelt_cuda_emu.so): tests/test_gptq_cuda.c and test_cuda_block.c load it in place of libsmelt_cuda.so
// to check the GPU path's bookkeeping on machines without a GPU. The sources are the
// plugin's own, unchanged.
#include "kernels/cuda/plugin_error.cu"
#include "kernels/cuda/device.cu"
#include "kernels/cuda/gptq.cu"
#include "kernels/cuda/block_exec.cu"
#include "kernels/cuda/calib_block.cu"
#include "kernels/cuda/forward.cu"

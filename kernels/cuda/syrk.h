// syrk.h - (plugin-internal) the Hessian accumulator's entry for activations already in device
// memory, used by the calibration block (calib_block.cu); gptq.cu implements it.
#ifndef SMELT_CUDA_SYRK_H
#define SMELT_CUDA_SYRK_H

#include "check.h"

// S += X^T X for n_tok device rows of s's width (row t at x + t*ld). Non-finite values are
// refused (-1 with a message), as on the CPU.
int smcu_syrk_add_device(sm_cuda_syrk *s, const float *x, int64_t n_tok, int64_t ld);

#endif

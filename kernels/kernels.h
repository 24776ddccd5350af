/* kernels.h - compute kernels: CPU feature detection and run-time dispatch, and the optional
 * CUDA backend (present when built with SMELT_HAVE_CUDA; every entry point has a CPU path). */
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

#endif

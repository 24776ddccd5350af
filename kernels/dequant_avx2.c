/* dequant_avx2.c - the vectorised dequantizers (dequant_impl.h) built for AVX2. */
#include "kernels_internal.h"
#define DEQUANT_FN sm_dequant_avx2
#include "dequant_impl.h"

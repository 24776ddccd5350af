/* dequant_avx512.c - the vectorised dequantizers (dequant_impl.h) built for AVX-512. */
#include "kernels_internal.h"
#define DEQUANT_FN sm_dequant_avx512
#include "dequant_impl.h"

/* cpu_features.c - which SIMD kernels this CPU can run. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

sm_isa sm_cpu_isa(void) {
    static int cached = -1;
    if (cached >= 0) return (sm_isa)cached;
    sm_isa isa = SM_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = SM_ISA_AVX2;
    if (isa == SM_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        isa = SM_ISA_AVX512;
#endif
    const char *cap = getenv("SMELT_ISA");
    if (cap) {
        sm_isa want = !strcmp(cap, "scalar") ? SM_ISA_SCALAR : !strcmp(cap, "avx2") ? SM_ISA_AVX2 : SM_ISA_AVX512;
        if (want < isa) isa = want;
    }
    cached = (int)isa;
    return isa;
}

const char *sm_isa_name(sm_isa isa) {
    return isa == SM_ISA_AVX512 ? "avx512" : isa == SM_ISA_AVX2 ? "avx2" : "scalar";
}

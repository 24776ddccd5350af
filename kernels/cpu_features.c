/* cpu_features.c - which SIMD kernels this CPU can run, and the one ISA selector the whole
 * program uses (matrix kernels, vector math, codecs, casts, GPTQ's GEMM). */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_hw = -1, g_cap = -1, g_active = -1;

sm_isa sm_cpu_isa_hw(void) {
    int hw = __atomic_load_n(&g_hw, __ATOMIC_RELAXED);
    if (hw >= 0) return (sm_isa)hw;
    sm_isa isa = SM_ISA_SCALAR;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = SM_ISA_AVX2;
    if (isa == SM_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        isa = SM_ISA_AVX512;
#endif
    __atomic_store_n(&g_hw, (int)isa, __ATOMIC_RELAXED);
    return isa;
}

int sm_isa_parse(const char *name, sm_isa *out) {
    if (!name) return -1;
    if (!strcmp(name, "scalar")) *out = SM_ISA_SCALAR;
    else if (!strcmp(name, "avx2")) *out = SM_ISA_AVX2;
    else if (!strcmp(name, "avx512")) *out = SM_ISA_AVX512;
    else return -1;
    return 0;
}

sm_isa sm_cpu_isa(void) {
    int cap = __atomic_load_n(&g_cap, __ATOMIC_RELAXED);
    if (cap >= 0) return (sm_isa)cap;
    sm_isa isa = sm_cpu_isa_hw();
    const char *env = getenv("SMELT_ISA");
    if (env && *env) {
        sm_isa want;
        if (sm_isa_parse(env, &want))
            fprintf(stderr, "smelt: warning: SMELT_ISA=%s is not one of scalar, avx2, avx512; ignored\n", env);
        else if (want < isa)
            isa = want;
    }
    __atomic_store_n(&g_cap, (int)isa, __ATOMIC_RELAXED);
    return isa;
}

sm_isa sm_isa_active(void) {
    int a = __atomic_load_n(&g_active, __ATOMIC_RELAXED);
    if (a >= 0) return (sm_isa)a;
    a = (int)sm_cpu_isa();
    __atomic_store_n(&g_active, a, __ATOMIC_RELAXED);
    return (sm_isa)a;
}

sm_isa sm_isa_set(sm_isa isa) {
    const sm_isa cap = sm_cpu_isa();
    if (isa > cap) isa = cap;
    __atomic_store_n(&g_active, (int)isa, __ATOMIC_RELAXED);
    return isa;
}

const char *sm_isa_name(sm_isa isa) {
    return isa == SM_ISA_AVX512 ? "avx512" : isa == SM_ISA_AVX2 ? "avx2" : "scalar";
}

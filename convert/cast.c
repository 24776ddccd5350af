/* cast.c - the converter's inner loop: one run of plain floating-point values from the
 * checkpoint's dtype to the output's (F32 / F16 / BF16), rounding as ggml and numpy do
 * (round to nearest even). AVX2+F16C kernels take the common pairs; the result is the same
 * bytes on every path (cast_avx2.c hands NaNs to the scalar code). */
#include "convert_internal.h"
#include "kernels/kernels.h"

#include <string.h>

int cv_cast_row_avx2(sm_type from, const void *src, sm_type to, void *dst, int64_t n);

int cv_cast_row(sm_type from, const void *src, sm_type to, void *dst, int64_t n) {
    if (from == to) {
        memcpy(dst, src, (size_t)n * sm_type_get(from)->block_bytes);
        return 0;
    }
#if defined(__x86_64__)
    if (sm_isa_active() >= SM_ISA_AVX2 && cv_cast_row_avx2(from, src, to, dst, n) == 0) return 0;
#endif
    /* any plain dtype -> float -> output type, a block at a time */
    float tmp[512];
    const size_t in = sm_type_get(from)->block_bytes, out = sm_type_get(to)->block_bytes;
    for (int64_t i = 0; i < n; i += 512) {
        int64_t k = n - i < 512 ? n - i : 512;
        if (sm_plain_to_f32(from, (const uint8_t *)src + (size_t)i * in, tmp, k) ||
            sm_f32_to_plain(to, tmp, (uint8_t *)dst + (size_t)i * out, k))
            return -1;
    }
    return 0;
}

/* numbers.c - conversions between float and the 8/16-bit float formats, and plain dtypes. */
#include "core.h"

#include <math.h>
#include <string.h>

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float sm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0)); /* NaN comes out quiet, as in ggml */
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sm_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;            /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00;           /* rounds to inf (>= 65520) */
    if (a < 0x38800000u) {                                /* below 2^-14: subnormal or zero */
        /* value / 2^-24, rounded to nearest even */
        float v = u2f(a) * 0x1p24f;                       /* exact scaling */
        float r = nearbyintf(v);                          /* default rounding: nearest even */
        return sign | (uint16_t)r;
    }
    /* normal: round mantissa to 10 bits, nearest even */
    uint32_t m = a + 0xfffu + ((a >> 13) & 1);
    return sign | (uint16_t)((m - 0x38000000u) >> 13);
}

float sm_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t sm_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

float sm_f8e4m3_to_f32(uint8_t v) {
    /* OCP FP8 E4M3 (the "fn" variant torch uses): bias 7, no infinities, S.1111.111 is NaN */
    int s = v >> 7, e = (v >> 3) & 0xf, m = v & 7;
    float r;
    if (e == 15 && m == 7) r = NAN;
    else if (e == 0) r = ldexpf((float)m, -9);
    else r = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return s ? -r : r;
}

float sm_f8e5m2_to_f32(uint8_t v) {
    /* E5M2 is the top byte of an IEEE half */
    return sm_f16_to_f32((uint16_t)(v << 8));
}

int sm_plain_to_f32(sm_type t, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    switch (t) {
    case SM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case SM_TYPE_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = sm_f16_to_f32(h); }
        return 0;
    case SM_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = sm_bf16_to_f32(h); }
        return 0;
    case SM_TYPE_F64:
        for (int64_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        return 0;
    case SM_TYPE_F8_E4M3: for (int64_t i = 0; i < n; i++) dst[i] = sm_f8e4m3_to_f32(s[i]); return 0;
    case SM_TYPE_F8_E5M2: for (int64_t i = 0; i < n; i++) dst[i] = sm_f8e5m2_to_f32(s[i]); return 0;
    case SM_TYPE_I8: for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)s[i]; return 0;
    case SM_TYPE_U8: case SM_TYPE_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; return 0;
    case SM_TYPE_I16:
        for (int64_t i = 0; i < n; i++) { int16_t v; memcpy(&v, s + 2 * i, 2); dst[i] = (float)v; }
        return 0;
    case SM_TYPE_U16:
        for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, s + 2 * i, 2); dst[i] = (float)v; }
        return 0;
    case SM_TYPE_I32:
        for (int64_t i = 0; i < n; i++) { int32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; }
        return 0;
    case SM_TYPE_U32:
        for (int64_t i = 0; i < n; i++) { uint32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; }
        return 0;
    case SM_TYPE_I64:
        for (int64_t i = 0; i < n; i++) { int64_t v; memcpy(&v, s + 8 * i, 8); dst[i] = (float)v; }
        return 0;
    case SM_TYPE_U64:
        for (int64_t i = 0; i < n; i++) { uint64_t v; memcpy(&v, s + 8 * i, 8); dst[i] = (float)v; }
        return 0;
    default:
        return sm_error("cannot convert %s to float without a dequantizer", sm_type_name(t));
    }
}

int sm_f32_to_plain(sm_type t, const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    switch (t) {
    case SM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case SM_TYPE_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = sm_f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); }
        return 0;
    case SM_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = sm_f32_to_bf16(src[i]); memcpy(d + 2 * i, &h, 2); }
        return 0;
    default:
        return sm_error("cannot convert float to %s here", sm_type_name(t));
    }
}

/* ---- non-finite values ---- */

static int g_allow_nonfinite;

void sm_set_allow_nonfinite(bool on) { g_allow_nonfinite = on; }
bool sm_allow_nonfinite(void) { return g_allow_nonfinite != 0; }

/* The scan for any is a branch-free OR over the exponent bits (it vectorizes, a memory-bound
 * pass over data the caller is about to read anyway); only a run that has one is searched
 * again for its position. */
#define SCAN(T, MASK, EXPECT)                                                         \
    do {                                                                              \
        const uint8_t *s = p;                                                         \
        T any = 0;                                                                    \
        for (int64_t i = 0; i < n; i++) {                                             \
            T v;                                                                      \
            memcpy(&v, s + sizeof(T) * (size_t)i, sizeof(T));                         \
            any |= (T)((v & (MASK)) == (EXPECT));                                     \
        }                                                                             \
        if (!any) return -1;                                                          \
        for (int64_t i = 0; i < n; i++) {                                             \
            T v;                                                                      \
            memcpy(&v, s + sizeof(T) * (size_t)i, sizeof(T));                         \
            if ((v & (MASK)) == (EXPECT)) return i;                                   \
        }                                                                             \
        return -1;                                                                    \
    } while (0)

int64_t sm_first_nonfinite(sm_type t, const void *p, int64_t n) {
    switch (t) {
    case SM_TYPE_F32: SCAN(uint32_t, 0x7f800000u, 0x7f800000u);
    case SM_TYPE_F16: SCAN(uint16_t, 0x7c00u, 0x7c00u);
    case SM_TYPE_BF16: SCAN(uint16_t, 0x7f80u, 0x7f80u);
    case SM_TYPE_F64: SCAN(uint64_t, 0x7ff0000000000000ull, 0x7ff0000000000000ull);
    case SM_TYPE_F8_E4M3: SCAN(uint8_t, 0x7fu, 0x7fu); /* no infinities; S.1111.111 is NaN */
    case SM_TYPE_F8_E5M2: SCAN(uint8_t, 0x7cu, 0x7cu);
    default: return -1; /* integers and block types: nothing to look at here */
    }
}
#undef SCAN

int sm_nonfinite_error(sm_type t, const void *elem, int64_t index, int64_t row_len) {
    float v = 0;
    sm_plain_to_f32(t, elem, &v, 1);
    if (row_len > 0)
        return sm_error("row %lld, column %lld holds %g (not finite; --allow-nonfinite passes such values through)",
                        (long long)(index / row_len), (long long)(index % row_len), (double)v);
    return sm_error("element %lld holds %g (not finite; --allow-nonfinite passes such values through)", (long long)index,
                    (double)v);
}

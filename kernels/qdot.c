/* qdot.c - activations quantized to 8 bits per block (ggml's quantize_row_q8_0_ref and
 * quantize_row_q8_K_ref) and the portable integer dot products of weight rows with them: the
 * reference the AVX2 and AVX-512 forms (qdot_impl.h) equal bit for bit (kernels_internal.h
 * says how the float parts are ordered). */
#include "kernels_internal.h"

#include <math.h>
#include <string.h>

sm_type sm_qdot_act_type(sm_type wtype) {
    switch (wtype) {
    case SM_TYPE_Q4_0: case SM_TYPE_Q8_0: return SM_TYPE_Q8_0;
    case SM_TYPE_Q4_K: case SM_TYPE_Q5_K: case SM_TYPE_Q6_K: return SM_TYPE_Q8_K;
    default: return SM_TYPE_INVALID;
    }
}

size_t sm_act_bytes(sm_type act, int64_t n) {
    return act == SM_TYPE_Q8_0 ? (size_t)(n / 32) * sizeof(sm_q8_0x) : (size_t)(n / 256) * sizeof(sm_q8_Kx);
}

static float h2f(const unsigned char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return sm_f16_to_f32(h);
}

/* clamp to the symmetric int8 range (the SIMD forms' u8 x s8 products never saturate) */
static int8_t clamp127(int v) { return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v); }

/* quantize_row_q8_0_ref: d = amax / 127 (kept as f16), q = roundf(x / d) */
static void act_q8_0(const float *x, int64_t n, sm_q8_0x *y) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        const float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        if (!isfinite(id)) id = 0.0f; /* a subnormal amax: ggml would overflow; all zero here */
        y->d = sm_f16_to_f32(sm_f32_to_f16(d));
        for (int j = 0; j < 32; j++) y->qs[j] = clamp127((int)roundf(x[j] * id));
    }
}

/* ggml's nearest_int: round half to even through the float's mantissa */
static int nearest_int(float f) {
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* quantize_row_q8_K_ref: iscale = -127 / (the value of largest magnitude), q = nearest(x *
 * iscale), d = 1 / iscale, bsums of 16 */
static void act_q8_K(const float *x, int64_t n, sm_q8_Kx *y) {
    for (int64_t b = 0; b < n / 256; b++, x += 256, y++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
        memset(y, 0, sizeof *y);
        if (amax == 0.0f || !isfinite(iscale)) continue; /* all zero (a subnormal amax too) */
        for (int j = 0; j < 256; j++) y->qs[j] = clamp127(nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y->qs[16 * j + i];
            y->bsums[j] = (int16_t)s;
        }
        y->d = 1.0f / iscale;
    }
}

int sm_quantize_act(sm_type act, const float *x, int64_t n, void *y) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return -1;
    if (act == SM_TYPE_Q8_0) act_q8_0(x, n, y);
    else act_q8_K(x, n, y);
    return 0;
}

/* ---- the portable dots ---- */

/* Q4_0 (18-byte blocks: f16 d, 16 bytes of nibbles, value - 8) and Q8_0 (34: f16 d, int8[32]) */
static float dot_q4_0_q8_0(sm_type t, const unsigned char *w, const sm_q8_0x *y, int64_t nb) {
    const size_t bs = t == SM_TYPE_Q8_0 ? 34 : 18;
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++, w += bs, y++) {
        const float d = h2f(w) * y->d;
        for (int i = 0; i < 8; i++) {
            int32_t lane = 0;
            for (int e = 4 * i; e < 4 * i + 4; e++) {
                const int q = t == SM_TYPE_Q8_0 ? (int)(int8_t)w[2 + e]
                                                : (e < 16 ? w[2 + e] & 15 : w[2 + e - 16] >> 4) - 8;
                lane += q * y->qs[e];
            }
            acc[i] += (float)lane * d;
        }
    }
    return sm_qd_reduce8(acc);
}

/* Q4_K (144 bytes: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176: ..., qh[32], qs[128]):
 * sub-block j of 32 is nibble (j odd: high) of qs[32 (j/2) + l], plus 16 if bit j of qh[l] */
static float dot_q45_K(sm_type t, const unsigned char *w, const sm_q8_Kx *y, int64_t nb) {
    const bool five = t == SM_TYPE_Q5_K;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += five ? 176 : 144, y++) {
        int sc[8], m[8];
        sm_qd_scales_k4(w + 4, sc, m);
        const unsigned char *qh = w + 16, *qs = w + (five ? 48 : 16);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int l = 0; l < 32; l++) {
                const int q = (j & 1 ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 15) +
                              (five && (qh[l] >> j & 1) ? 16 : 0);
                s += q * y->qs[32 * j + l];
            }
            isum += sc[j] * s;
            msum += m[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
        }
        acc = sm_qd_ksum(acc, h2f(w) * y->d, isum, h2f(w + 2) * y->d, msum);
    }
    return acc;
}

/* Q6_K (210 bytes: ql[128], qh[64], int8 scales[16], f16 d): value q - 32 with q of dequant_impl.h */
static float dot_q6_K(const unsigned char *w, const sm_q8_Kx *y, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += 210, y++) {
        const signed char *sc = (const signed char *)(w + 192);
        int32_t isum = 0, off = 0;
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) {
                    const unsigned char a = w[64 * h + 32 * (j & 1) + l], qh = w[128 + 32 * h + l];
                    const int q = ((j < 2 ? a & 15 : a >> 4) | ((qh >> 2 * j) & 3) << 4);
                    isum += sc[8 * h + 2 * j + l / 16] * q * y->qs[128 * h + 32 * j + l];
                }
        for (int k = 0; k < 16; k++) off += sc[k] * y->bsums[k];
        acc = sm_qd_ksum(acc, h2f(w + 208) * y->d, isum - 32 * off, 0.0f, 0);
    }
    return acc;
}

float sm_qdot8_scalar(sm_type type, const void *w, const void *xq, int64_t n) {
    SM_QDOT8_DISPATCH(type, w, xq, n, dot_q4_0_q8_0, dot_q6_K, dot_q45_K);
}

#if defined(__x86_64__)
float sm_qdot8_avx512(sm_type type, const void *w, const void *xq, int64_t n) {
    static int vnni = -1;
    int v = __atomic_load_n(&vnni, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
        __atomic_store_n(&vnni, v, __ATOMIC_RELAXED);
    }
    return v ? sm_qdot8_avx512vnni(type, w, xq, n) : sm_qdot8_avx2(type, w, xq, n);
}
#endif

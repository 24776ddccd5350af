/* dequant_impl.h - vectorised dequantizers for the block types the runtime meets most (Q8_0,
 * Q4_0, Q4_K, Q6_K), written once over VW-lane vectors and included by dequant_avx2.c (8
 * lanes) and dequant_avx512.c (16). Each one either stores the row as floats (DEQUANT_FN) or
 * takes its dot product with a float vector without storing it (QDOT_FN: generation's
 * matrix-vector products). The including file defines the names, the vector macros (V_*) and
 * DOT_REDUCE(acc): the dot is then bit for bit the ISA's float dot of the dequantized row
 * (matmul_avx2.c / matmul_avx512.c: groups of VW elements alternate between two accumulators,
 * in element order, one final reduction), so fusing changes no result.
 *
 * Every value is the one quantize/'s scalar dequantizer (ggml's formula) gives, bit for bit:
 * the same float operations in the same order (products of exactly converted integers with
 * the block scales, no fused multiply-adds: the project compiles as ISO C, which does not
 * contract), so which ISA dequantized a row never shows in a result. Block layouts are
 * ggml's (byte offsets below). */
#include <immintrin.h>
#include <string.h>

#include "core/core.h"

/* f16 -> f32 with the F16C instruction (exact, as sm_f16_to_f32), except infinities and NaNs
 * (whose payload the instruction may quiet), which go through sm_f16_to_f32 */
static inline float dq_h2f(const unsigned char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return (h & 0x7c00) == 0x7c00 ? sm_f16_to_f32(h) : _cvtsh_ss(h);
}


/* Where the 8 values at element o go: stored (mode 0) or multiplied into the dot (mode 1). */
typedef struct dq_sink { float *y; const float *x; V acc[2]; } dq_sink;

static inline __attribute__((always_inline)) void dq_put(const int mode, dq_sink *s, int64_t o, V v) {
    if (mode == 0) V_STORE(s->y + o, v);
    else s->acc[(o / VW) & 1] = V_FMA(v, V_LOAD(s->x + o), s->acc[(o / VW) & 1]);
}

/* Q8_0: 34-byte blocks of 32 (f16 d, int8 qs[32]): y = q * d */
static inline __attribute__((always_inline)) void dq_q8_0(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34) {
        const V d = V_SET1(dq_h2f(b));
        for (int j = 0; j < 32; j += VW) dq_put(mode, s, 32 * i + j, V_MUL(V_CVT(V_I8(b + 2 + j)), d));
    }
}

/* Q4_0: 18-byte blocks of 32 (f16 d, qs[16]): y[j] = ((qs[j] & 15) - 8) * d, y[j+16] = ((qs[j] >> 4) - 8) * d */
static inline __attribute__((always_inline)) void dq_q4_0(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const VI lo = V_SET1I(15), eight = V_SET1I(8);
    for (int64_t i = 0; i < nb; i++, b += 18) {
        const V d = V_SET1(dq_h2f(b));
        for (int j = 0; j < 16; j += VW) {
            const VI q = V_U8(b + 2 + j);
            dq_put(mode, s, 32 * i + j, V_MUL(V_CVT(V_SUBI(V_AND(q, lo), eight)), d));
            dq_put(mode, s, 32 * i + j + 16, V_MUL(V_CVT(V_SUBI(V_SRLI(q, 4), eight)), d));
        }
    }
}

/* ggml's get_scale_min_k4 */
static inline void dq_scale_min_k4(int j, const unsigned char *q, float *sc, float *m) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *m = (float)(q[j + 4] & 63);
    } else {
        *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: 144-byte superblocks of 256 (f16 d, f16 dmin, scales[12], qs[128]); 64 values per 32
 * bytes of qs: y = (d*sc) * (q & 15) - dmin*m, then (d*sc') * (q >> 4) - dmin*m' */
static inline __attribute__((always_inline)) void dq_q4_K(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const VI lo = V_SET1I(15);
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = dq_h2f(b), min = dq_h2f(b + 2);
        const unsigned char *sc = b + 4, *q = b + 16;
        for (int is = 0; is < 8; is += 2, q += 32) {
            float s1, m1, s2, m2;
            dq_scale_min_k4(is, sc, &s1, &m1);
            dq_scale_min_k4(is + 1, sc, &s2, &m2);
            const V d1 = V_SET1(d * s1), n1 = V_SET1(min * m1);
            const V d2 = V_SET1(d * s2), n2 = V_SET1(min * m2);
            const int64_t o = 256 * i + 32 * is;
            /* in element order (a dot's accumulators must see their groups in order) */
            for (int l = 0; l < 32; l += VW)
                dq_put(mode, s, o + l, V_SUB(V_MUL(d1, V_CVT(V_AND(V_U8(q + l), lo))), n1));
            for (int l = 0; l < 32; l += VW)
                dq_put(mode, s, o + 32 + l, V_SUB(V_MUL(d2, V_CVT(V_SRLI(V_U8(q + l), 4))), n2));
        }
    }
}

/* Q6_K: 210-byte superblocks of 256 (ql[128], qh[64], int8 scales[16], f16 d); per 128 values
 * (64 of ql, 32 of qh, 8 scales), quarter j (j < 4) of 32: y[32j + l] = (d * sc[l/16 + 2j]) * q,
 * q = (4 bits of ql[32 (j & 1) + l]: low for j < 2, high after) | (bits 2j, 2j+1 of qh[l]) << 4, minus 32 */
static inline __attribute__((always_inline)) void dq_q6_K(const int mode, dq_sink *s, const unsigned char *b, int64_t nb) {
    const VI lo = V_SET1I(15), three = V_SET1I(3), off = V_SET1I(32);
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const float d = dq_h2f(b + 208);
        const unsigned char *ql = b, *qh = b + 128;
        const signed char *sc = (const signed char *)(b + 192);
        /* in element order (a dot's accumulators must see their groups in order) */
        for (int k = 0; k < 256; k += 128, ql += 64, qh += 32, sc += 8)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l += VW) {
                    const VI a = V_U8(ql + 32 * (j & 1) + l), h = V_U8(qh + l);
                    const VI lq = j < 2 ? V_AND(a, lo) : V_SRLI(a, 4);
                    const VI hq = V_SLLI(V_AND(V_SRLI(h, 2 * j), three), 4);
                    const V ds = V_SET1(d * (float)sc[l / 16 + 2 * j]);
                    dq_put(mode, s, 256 * i + k + 32 * j + l,
                           V_MUL(ds, V_CVT(V_SUBI(V_OR(lq, hq), off))));
                }
    }
}

/* Both modes: 0 if `type` was handled (n a whole number of blocks: the caller checked), 1 if
 * this ISA has no vector form for it. */
static inline __attribute__((always_inline)) int dq_run(const int mode, dq_sink *s, sm_type type, const void *src, int64_t n) {
    switch (type) {
    case SM_TYPE_Q8_0: dq_q8_0(mode, s, src, n / 32); return 0;
    case SM_TYPE_Q4_0: dq_q4_0(mode, s, src, n / 32); return 0;
    case SM_TYPE_Q4_K: dq_q4_K(mode, s, src, n / 256); return 0;
    case SM_TYPE_Q6_K: dq_q6_K(mode, s, src, n / 256); return 0;
    default: return 1;
    }
}

int DEQUANT_FN(sm_type type, const void *src, float *dst, int64_t n) {
    dq_sink s = {.y = dst};
    return dq_run(0, &s, type, src, n);
}

/* *out = the float dot product of the dequantized row with x (n elements). */
int QDOT_FN(sm_type type, const void *src, const float *x, int64_t n, float *out) {
    dq_sink s = {.x = x, .acc = {V_ZERO, V_ZERO}};
    if (dq_run(1, &s, type, src, n)) return 1;
    *out = DOT_REDUCE(s.acc);
    return 0;
}

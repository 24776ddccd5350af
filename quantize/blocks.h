/* blocks.h - (internal) the byte layouts of ggml's block types and the small numeric helpers
 * every codec shares.
 *
 * The structs mirror ggml-common.h field for field (little-endian, no padding); the
 * static_asserts pin their sizes to core/types.c. Half-precision fields are stored as raw
 * uint16_t bits and converted with sm_f32_to_f16 / sm_f16_to_f32 (round to nearest even,
 * like ggml's GGML_FP32_TO_FP16). */
#ifndef SMELT_QUANTIZE_BLOCKS_H
#define SMELT_QUANTIZE_BLOCKS_H

#include "core/core.h"

#include <assert.h>
#include <string.h>

#define QK32 32   /* elements per block of the legacy types and IQ4_NL */
#define QK_K 256  /* elements per super-block of the k-quants and IQ4_XS */
#define K_SCALE_SIZE 12

/* Groups whose largest magnitude is below this are treated as all zero (ggml's GROUP_MAX_EPS). */
#define GROUP_MAX_EPS 1e-15f

typedef struct { uint16_t d; uint8_t qs[QK32 / 2]; } block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QK32 / 2]; } block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK32 / 2]; } block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK32 / 2]; } block_q5_1;
typedef struct { uint16_t d; int8_t qs[QK32]; } block_q8_0;
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
typedef struct { uint16_t d; uint8_t qs[QK32 / 2]; } block_iq4_nl;
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;

typedef struct { uint16_t d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
typedef struct { uint16_t d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
typedef struct { uint16_t d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
typedef struct { uint16_t d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;
typedef struct { uint16_t d; uint8_t qs[QK_K / 8]; uint16_t qh[QK_K / 32]; } block_iq1_s;
typedef struct { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; } block_iq1_m;
typedef struct { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; uint16_t d; } block_tq1_0;
typedef struct { uint8_t qs[QK_K / 4]; uint16_t d; } block_tq2_0;
typedef struct { uint8_t e; uint8_t qs[QK32 / 2]; } block_mxfp4;

static_assert(sizeof(block_q4_0) == 18, "q4_0 block");
static_assert(sizeof(block_q4_1) == 20, "q4_1 block");
static_assert(sizeof(block_q5_0) == 22, "q5_0 block");
static_assert(sizeof(block_q5_1) == 24, "q5_1 block");
static_assert(sizeof(block_q8_0) == 34, "q8_0 block");
static_assert(sizeof(block_q2_K) == 84, "q2_K block");
static_assert(sizeof(block_q3_K) == 110, "q3_K block");
static_assert(sizeof(block_q4_K) == 144, "q4_K block");
static_assert(sizeof(block_q5_K) == 176, "q5_K block");
static_assert(sizeof(block_q6_K) == 210, "q6_K block");
static_assert(sizeof(block_q8_K) == 292, "q8_K block");
static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block");
static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block");
static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs block");
static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs block");
static_assert(sizeof(block_iq2_s) == 82, "iq2_s block");
static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs block");
static_assert(sizeof(block_iq3_s) == 110, "iq3_s block");
static_assert(sizeof(block_iq1_s) == 50, "iq1_s block");
static_assert(sizeof(block_iq1_m) == 56, "iq1_m block");
static_assert(sizeof(block_tq1_0) == 54, "tq1_0 block");
static_assert(sizeof(block_tq2_0) == 66, "tq2_0 block");
static_assert(sizeof(block_mxfp4) == 17, "mxfp4 block");

/* The 16 levels of the non-linear 4-bit types (ggml's kvalues_iq4nl). */
extern const int8_t sm_iq4nl_values[16];

/* Round to nearest (ties to even) through the float-add trick ggml uses; valid for
 * |f| <= 4194303, and, like ggml's, deterministic garbage beyond (results must match). */
static inline int q_nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

#define Q_MIN(a, b) ((a) < (b) ? (a) : (b))
#define Q_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline float h2f(uint16_t h) { return sm_f16_to_f32(h); }
static inline uint16_t f2h(float f) { return sm_f32_to_f16(f); }

/* The 6-bit scale and min of sub-block j of a q4_K / q5_K block. */
static inline void q_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

#endif

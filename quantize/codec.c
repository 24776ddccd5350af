/* codec.c - the codec table and the public entry points of quantize.h: input checks, the
 * per-row dispatch (OpenMP over rows, static schedule, so the bytes never depend on the
 * thread count) and the check that every stored scale is a finite f16. */
#include "quantize/quantize.h"

#include "quantize/codec_internal.h"
#include "quantize/iq_grids.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>

typedef struct q_codec {
    sm_type type;
    q_row_fn quantize;     /* scalar reference, one row; NULL: dequantize only */
    q_rows_fn simd[2];     /* AVX2, AVX-512 (many rows at once); NULL: as the ISA below */
    q_deq_fn dequantize;
    bool uses_imatrix;     /* ggml's quantizer for this type reads importance weights */
    uint8_t n_scales;      /* f16 scale fields per block, at scale_off[] */
    uint8_t scale_off[2];
} q_codec;

#define SCALES1(T, a) 1, {offsetof(T, a), 0}
#define SCALES2(T, a, b) 2, {offsetof(T, a), offsetof(T, b)}

static const q_codec CODECS[] = {
    {SM_TYPE_Q4_0, q_quantize_q4_0, {q_quantize_q4_0_avx2, q_quantize_q4_0_avx512}, q_dequantize_q4_0, true, SCALES1(block_q4_0, d)},
    {SM_TYPE_Q4_1, q_quantize_q4_1, {q_quantize_q4_1_avx2, q_quantize_q4_1_avx512}, q_dequantize_q4_1, true, SCALES2(block_q4_1, d, m)},
    {SM_TYPE_Q5_0, q_quantize_q5_0, {q_quantize_q5_0_avx2, q_quantize_q5_0_avx512}, q_dequantize_q5_0, true, SCALES1(block_q5_0, d)},
    {SM_TYPE_Q5_1, q_quantize_q5_1, {q_quantize_q5_1_avx2, q_quantize_q5_1_avx512}, q_dequantize_q5_1, true, SCALES2(block_q5_1, d, m)},
    {SM_TYPE_Q8_0, q_quantize_q8_0, {q_quantize_q8_0_avx2, q_quantize_q8_0_avx512}, q_dequantize_q8_0, false, SCALES1(block_q8_0, d)},
    {SM_TYPE_Q2_K, q_quantize_q2_K, {q_quantize_q2_K_avx2, q_quantize_q2_K_avx512}, q_dequantize_q2_K, true, SCALES2(block_q2_K, d, dmin)},
    {SM_TYPE_Q3_K, q_quantize_q3_K, {q_quantize_q3_K_avx2, q_quantize_q3_K_avx512}, q_dequantize_q3_K, true, SCALES1(block_q3_K, d)},
    {SM_TYPE_Q4_K, q_quantize_q4_K, {q_quantize_q4_K_avx2, q_quantize_q4_K_avx512}, q_dequantize_q4_K, true, SCALES2(block_q4_K, d, dmin)},
    {SM_TYPE_Q5_K, q_quantize_q5_K, {q_quantize_q5_K_avx2, q_quantize_q5_K_avx512}, q_dequantize_q5_K, true, SCALES2(block_q5_K, d, dmin)},
    {SM_TYPE_Q6_K, q_quantize_q6_K, {q_quantize_q6_K_avx2, q_quantize_q6_K_avx512}, q_dequantize_q6_K, true, SCALES1(block_q6_K, d)},
    {SM_TYPE_Q8_K, NULL, {NULL, NULL}, q_dequantize_q8_K, false, 0, {0, 0}},
    {SM_TYPE_IQ4_NL, q_quantize_iq4_nl, {q_quantize_iq4_nl_avx2, q_quantize_iq4_nl_avx512}, q_dequantize_iq4_nl, true, SCALES1(block_iq4_nl, d)},
    {SM_TYPE_IQ4_XS, q_quantize_iq4_xs, {q_quantize_iq4_xs_avx2, q_quantize_iq4_xs_avx512}, q_dequantize_iq4_xs, true, SCALES1(block_iq4_xs, d)},
    {SM_TYPE_TQ1_0, q_quantize_tq1_0, {NULL, NULL}, q_dequantize_tq1_0, false, SCALES1(block_tq1_0, d)},
    {SM_TYPE_TQ2_0, q_quantize_tq2_0, {NULL, NULL}, q_dequantize_tq2_0, false, SCALES1(block_tq2_0, d)},
    {SM_TYPE_IQ2_XXS, q_quantize_iq2_xxs, {NULL, NULL}, q_dequantize_iq2_xxs, true, SCALES1(block_iq2_xxs, d)},
    {SM_TYPE_IQ2_XS, q_quantize_iq2_xs, {NULL, NULL}, q_dequantize_iq2_xs, true, SCALES1(block_iq2_xs, d)},
    {SM_TYPE_IQ2_S, q_quantize_iq2_s, {NULL, NULL}, q_dequantize_iq2_s, true, SCALES1(block_iq2_s, d)},
    {SM_TYPE_IQ3_XXS, q_quantize_iq3_xxs, {NULL, NULL}, q_dequantize_iq3_xxs, true, SCALES1(block_iq3_xxs, d)},
    {SM_TYPE_IQ3_S, q_quantize_iq3_s, {NULL, NULL}, q_dequantize_iq3_s, true, SCALES1(block_iq3_s, d)},
    {SM_TYPE_IQ1_S, q_quantize_iq1_s, {NULL, NULL}, q_dequantize_iq1_s, true, SCALES1(block_iq1_s, d)},
    {SM_TYPE_IQ1_M, q_quantize_iq1_m, {NULL, NULL}, q_dequantize_iq1_m, true, 0, {0, 0}},
    {SM_TYPE_MXFP4, q_quantize_mxfp4, {NULL, NULL}, q_dequantize_mxfp4, false, 0, {0, 0}},
};

/* Builds the lattice a type's quantizer searches before the threads start (false: no memory). */
static bool q_iq_prepare(sm_type t) {
    q_iq_grid_id id;
    switch (t) {
    case SM_TYPE_IQ2_XXS: id = Q_IQ_GRID_2XXS; break;
    case SM_TYPE_IQ2_XS: id = Q_IQ_GRID_2XS; break;
    case SM_TYPE_IQ2_S: id = Q_IQ_GRID_2S; break;
    case SM_TYPE_IQ1_S: case SM_TYPE_IQ1_M: id = Q_IQ_GRID_1S; break;
    case SM_TYPE_IQ3_XXS: id = Q_IQ_GRID_3XXS; break;
    case SM_TYPE_IQ3_S: id = Q_IQ_GRID_3S; break;
    default: return true;
    }
    return q_iq_grid_get(id) != NULL;
}

static const q_codec *codec_of(sm_type t) {
    for (size_t i = 0; i < sizeof CODECS / sizeof CODECS[0]; i++)
        if (CODECS[i].type == t) return &CODECS[i];
    return NULL;
}

/* The SIMD quantizer of codec c for the active ISA, or NULL (all give the same bytes). */
static q_rows_fn simd_quantizer(const q_codec *c) {
    for (int isa = (int)sm_isa_active(); isa > 0; isa--)
        if (c->simd[isa - 1]) return c->simd[isa - 1];
    return NULL;
}

static bool is_plain_float(sm_type t) { return t == SM_TYPE_F32 || t == SM_TYPE_F16 || t == SM_TYPE_BF16; }

bool sm_quantize_supported(sm_type type) {
    if (is_plain_float(type)) return true;
    const q_codec *c = codec_of(type);
    return c && c->quantize;
}

bool sm_quantize_requires_imatrix(sm_type type) {
    return type == SM_TYPE_IQ2_XXS || type == SM_TYPE_IQ2_XS || type == SM_TYPE_IQ1_S;
}

/* Index of the first non-finite value of x[n], or -1. The scan for any is branch-free (it
 * vectorizes); only a row that has one is searched again. */
static int64_t first_nonfinite(const float *x, int64_t n) {
    uint32_t any = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!any) return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* Index of the first block of a quantized row whose f16 scales are not finite, or -1. */
static int64_t first_bad_scale(const q_codec *c, const uint8_t *row, int64_t nblocks, size_t block_bytes) {
    for (int64_t b = 0; b < nblocks; b++) {
        for (int k = 0; k < c->n_scales; k++) {
            uint16_t h;
            memcpy(&h, row + (size_t)b * block_bytes + c->scale_off[k], 2);
            if ((h & 0x7c00) == 0x7c00) return b;
        }
    }
    return -1;
}

size_t sm_quantize_rows(sm_type type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix) {
    const sm_type_info *ti = sm_type_get(type);
    if (!ti || !sm_quantize_supported(type))
        return sm_error("quantize: cannot produce type %s", sm_type_name(type)), 0;
    if (nrows < 0 || n_per_row <= 0)
        return sm_error("quantize %s: bad shape (%lld rows of %lld)", ti->name, (long long)nrows,
                        (long long)n_per_row), 0;
    if (n_per_row % ti->block_size)
        return sm_error("quantize %s: row length %lld is not a multiple of the block size %d", ti->name,
                        (long long)n_per_row, ti->block_size), 0;
    const size_t row_bytes = (size_t)sm_type_row_bytes(type, n_per_row);
    if (nrows == 0) return 0;

    if (is_plain_float(type)) {
        if (sm_f32_to_plain(type, src, dst, nrows * n_per_row) != 0) return 0;
        return (size_t)nrows * row_bytes;
    }

    const q_codec *c = codec_of(type);
    if (!c->uses_imatrix) imatrix = NULL;
    if (!imatrix && sm_quantize_requires_imatrix(type))
        return sm_error("quantize %s: needs importance weights (an imatrix); ggml cannot make %s without them",
                        ti->name, ti->name), 0;
    if (!q_iq_prepare(type)) return sm_error("quantize %s: out of memory building its grid", ti->name), 0;
    if (imatrix) {
        for (int64_t j = 0; j < n_per_row; j++)
            if (!isfinite(imatrix[j]) || imatrix[j] < 0)
                return sm_error("quantize %s: importance weight %lld is %g (must be finite and >= 0)", ti->name,
                                (long long)j, (double)imatrix[j]), 0;
    }

    /* One parallel region; each thread takes a contiguous range of rows (the bytes do not
     * depend on the split), checks its inputs, quantizes them and checks the scales it wrote.
     * Of the failing rows the lowest is reported, bad input before bad scales. */
    const q_rows_fn rows_fn = simd_quantizer(c);
    const int64_t nblocks = n_per_row / ti->block_size;
    int64_t bad_input = INT64_MAX, bad_scale = INT64_MAX;
#pragma omp parallel num_threads(sm_num_threads())
    {
        const int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
        const int64_t r0 = nrows * t / k, r1 = nrows * (t + 1) / k;
        int64_t my_input = INT64_MAX, my_scale = INT64_MAX;
        for (int64_t r = r0; r < r1 && my_input == INT64_MAX; r++)
            if (first_nonfinite(src + r * n_per_row, n_per_row) >= 0) my_input = r;
        if (my_input == INT64_MAX && r1 > r0) {
            if (rows_fn) {
                rows_fn(src + r0 * n_per_row, (uint8_t *)dst + (size_t)r0 * row_bytes, r1 - r0, n_per_row, imatrix);
            } else {
                for (int64_t r = r0; r < r1; r++)
                    c->quantize(src + r * n_per_row, (uint8_t *)dst + (size_t)r * row_bytes, n_per_row, imatrix);
            }
            for (int64_t r = r0; r < r1 && my_scale == INT64_MAX; r++)
                if (first_bad_scale(c, (const uint8_t *)dst + (size_t)r * row_bytes, nblocks, ti->block_bytes) >= 0)
                    my_scale = r;
        }
#pragma omp critical(sm_quantize_rows)
        {
            if (my_input < bad_input) bad_input = my_input;
            if (my_scale < bad_scale) bad_scale = my_scale;
        }
    }
    if (bad_input != INT64_MAX) {
        const int64_t col = first_nonfinite(src + bad_input * n_per_row, n_per_row);
        return sm_error("quantize %s: row %lld, column %lld: value %g is not finite", ti->name, (long long)bad_input,
                        (long long)col, (double)src[bad_input * n_per_row + col]), 0;
    }
    if (bad_scale != INT64_MAX) {
        int64_t blk = first_bad_scale(c, (const uint8_t *)dst + (size_t)bad_scale * row_bytes, nblocks, ti->block_bytes);
        return sm_error("quantize %s: row %lld, block %lld: scale overflows f16 (values too large for %s)", ti->name,
                        (long long)bad_scale, (long long)blk, ti->name), 0;
    }
    return (size_t)nrows * row_bytes;
}

int sm_dequantize_row(sm_type type, const void *src, float *dst, int64_t n) {
    const sm_type_info *ti = sm_type_get(type);
    if (!ti) return sm_error("dequantize: unknown type %d", (int)type);
    if (n < 0 || n % ti->block_size)
        return sm_error("dequantize %s: %lld elements is not a whole number of blocks of %d", ti->name, (long long)n,
                        ti->block_size);
    if (!ti->quantized) return sm_plain_to_f32(type, src, dst, n);
    const q_codec *c = codec_of(type);
    if (!c) return sm_error("dequantize: no codec for %s", ti->name);
    if (!q_iq_prepare(type)) return sm_error("dequantize %s: out of memory building its grid", ti->name);
    c->dequantize(src, dst, n);
    return 0;
}

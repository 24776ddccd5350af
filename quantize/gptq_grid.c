/* gptq_grid.c - the quantizer grids GPTQ rounds to: per (row, group of columns) parameters
 * fitted on the current weights, the nearest representable value of one weight, and for the
 * GGUF block types the final packing into ggml's bytes.
 *
 *  - INT: the integer grid of HF GPTQ checkpoints, as gptq's Quantizer.find_params:
 *    xmin = min(x, 0), xmax = max(x, 0); sym: xmax = max(|xmin|, xmax), xmin = -xmax if
 *    xmin < 0; both zero -> [-1, 1]; scale = (xmax - xmin) / maxq, rounded to f16 (what the
 *    checkpoint stores) before it is used; zero = sym ? (maxq + 1) / 2 : round(-xmin / scale);
 *    q = clamp(round(x / scale) + zero, 0, maxq), w-hat = scale * (q - zero).
 *  - LEGACY (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; blocks of 32), KQUANT (Q2_K, Q3_K, Q4_K, Q5_K,
 *    Q6_K; super-blocks of 256) and the non-linear IQ4_NL (blocks of 32) and IQ4_XS
 *    (super-blocks of 256; nearest of the 16 fixed levels times the sub-block scale): the
 *    block's scales come from our ggml-identical codec run on the
 *    current weights of the block (with importance = diag H when asked: ggml's weighted rule,
 *    the block standing in for the row in the legacy types' sigma2); the stored f16 scales
 *    are decoded exactly as ggml's dequantizer does, and each weight then goes to the nearest
 *    level of that grid. The scales of a k-quant super-block (its f16 super-scale and all its
 *    sub-scales) are fitted once, when the sweep reaches the super-block's first column, on
 *    the weights as updated by all earlier columns: the super-scale depends on every
 *    sub-block, so it cannot be refitted per sub-block without changing the scales of columns
 *    already quantized, and fitting on the updated weights lets the codec see the errors
 *    already pushed into them (as the reference GPTQ fits each group when it starts).
 *    What the fit cannot see are the updates the super-block's own columns push into its
 *    later columns; on Q2_K and Q3_K, whose 4 and 8 levels make a misfitted scale costly, a
 *    second sweep (gq_fit_passes, gptq.c's refit_sweeps) fits each super-block on the values
 *    the first sweep actually quantized, and each row keeps the sweep with the smaller
 *    Hessian-weighted error. Measured on tiny-llama-kjv (112 x 256 calibration tokens, KLD
 *    on kjv-eval): Q2_K 0.1276 -> 0.1251. (A least-squares refit of the sub-block scales and
 *    mins after the sweep, codes fixed, was not tried: the sub-scales are 4-bit multiples of
 *    a shared f16 scale, so such a refit would have to be requantized in turn.)
 *    The value returned is computed with the dequantizer's float
 *    operations, so the packed blocks decode to exactly the returned values. */
#include "quantize/gptq_internal.h"

#include "quantize/codec_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_legacy(sm_type t) {
    return t == SM_TYPE_Q4_0 || t == SM_TYPE_Q4_1 || t == SM_TYPE_Q5_0 || t == SM_TYPE_Q5_1 || t == SM_TYPE_Q8_0;
}
static bool is_kquant(sm_type t) {
    return t == SM_TYPE_Q2_K || t == SM_TYPE_Q3_K || t == SM_TYPE_Q4_K || t == SM_TYPE_Q5_K || t == SM_TYPE_Q6_K;
}
static bool is_iq4(sm_type t) { return t == SM_TYPE_IQ4_NL || t == SM_TYPE_IQ4_XS; }

bool sm_gptq_has_grid(sm_type t) { return is_legacy(t) || is_kquant(t) || is_iq4(t); }

int gq_grid_init(gq_grid *g, const sm_gptq_opts *o, int64_t rows, int64_t cols) {
    memset(g, 0, sizeof *g);
    g->rows = rows;
    if (o->gguf_type == SM_TYPE_INVALID) {
        if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
            return sm_error("gptq: %d bits is not supported (2, 3, 4 or 8)", o->bits);
        if (o->group_size != -1 && o->group_size <= 0)
            return sm_error("gptq: group size %d (must be positive, or -1 for one group per row)", o->group_size);
        g->is_int = true;
        g->maxq = (1 << o->bits) - 1;
        g->sym = o->sym;
        g->zero_min1 = o->v1_zero && !o->sym;
        g->group = o->group_size == -1 || o->group_size > cols ? (int)cols : o->group_size;
    } else {
        const sm_type t = o->gguf_type;
        if (!sm_gptq_has_grid(t))
            return sm_error("gptq: GGUF type %s is not supported (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, "
                            "Q6_K, IQ4_NL, IQ4_XS)",
                            sm_type_name(t));
        g->type = t;
        g->group = sm_type_get(t)->block_size;
        if (cols % g->group)
            return sm_error("gptq: %lld columns is not a multiple of the %s block size %d", (long long)cols,
                            sm_type_name(t), g->group);
        g->row_bytes = (size_t)sm_type_row_bytes(t, cols);
    }
    g->n_groups = (cols + g->group - 1) / g->group;
    g->act = calloc((size_t)rows * GQ_ACT, sizeof(float));
    if (g->is_int) {
        g->scale_h = calloc((size_t)(g->n_groups * rows), sizeof(uint16_t));
        g->zero = calloc((size_t)(g->n_groups * rows), sizeof(int32_t));
        if (!g->act || !g->scale_h || !g->zero) goto oom;
    } else {
        g->packed = calloc((size_t)rows, g->row_bytes);
        if (!g->act || !g->packed) goto oom;
    }
    return 0;
oom:
    gq_grid_free(g);
    return sm_error("gptq: out of memory for the grid of a %lld x %lld weight", (long long)rows, (long long)cols);
}

void gq_grid_free(gq_grid *g) {
    free(g->scale_h);
    free(g->zero);
    free(g->packed);
    free(g->act);
    memset(g, 0, sizeof *g);
}

void gq_grid_activate(gq_grid *g, int64_t r, int64_t gi) {
    float *a = g->act + r * GQ_ACT;
    a[0] = sm_f16_to_f32(g->scale_h[gi * g->rows + r]);
    a[1] = (float)g->zero[gi * g->rows + r];
}

static int fit_int(gq_grid *g, int64_t r, int64_t gi, const double *x, int n) {
    double xmin = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] < xmin) xmin = x[i];
        if (x[i] > xmax) xmax = x[i];
    }
    if (g->sym) {
        if (-xmin > xmax) xmax = -xmin;
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
    }
    uint16_t h = sm_f32_to_f16((float)((xmax - xmin) / g->maxq));
    double s = sm_f16_to_f32(h);
    if (!isfinite(s))
        return sm_error("gptq: row %lld, group %lld: scale %g overflows f16", (long long)r, (long long)gi,
                        (xmax - xmin) / g->maxq);
    if (s == 0) { /* a range below f16's smallest subnormal: use that */
        h = 1;
        s = sm_f16_to_f32(h);
    }
    int32_t z;
    if (g->sym) {
        z = (g->maxq + 1) / 2;
    } else {
        double zz = nearbyint(-xmin / s);
        const double lo = g->zero_min1 ? 1 : 0;
        z = (int32_t)(zz < lo ? lo : zz > g->maxq ? g->maxq : zz);
    }
    g->scale_h[gi * g->rows + r] = h;
    g->zero[gi * g->rows + r] = z;
    gq_grid_activate(g, r, gi);
    return 0;
}

/* The block's codec output (scales and provisional codes) at the block's place in the row. */
static uint8_t *block_at(const gq_grid *g, int64_t r, int64_t gi) {
    return g->packed + (size_t)r * g->row_bytes + (size_t)gi * sm_type_get(g->type)->block_bytes;
}

static void run_codec(sm_type t, const float *xf, void *blk, int n, const float *imp) {
    switch (t) {
    case SM_TYPE_Q4_0: q_quantize_q4_0(xf, blk, n, imp); break;
    case SM_TYPE_Q4_1: q_quantize_q4_1(xf, blk, n, imp); break;
    case SM_TYPE_Q5_0: q_quantize_q5_0(xf, blk, n, imp); break;
    case SM_TYPE_Q5_1: q_quantize_q5_1(xf, blk, n, imp); break;
    case SM_TYPE_Q8_0: q_quantize_q8_0(xf, blk, n, imp); break;
    case SM_TYPE_Q2_K: q_quantize_q2_K(xf, blk, n, imp); break;
    case SM_TYPE_Q3_K: q_quantize_q3_K(xf, blk, n, imp); break;
    case SM_TYPE_IQ4_NL: q_quantize_iq4_nl(xf, blk, n, imp); break;
    case SM_TYPE_IQ4_XS: q_quantize_iq4_xs(xf, blk, n, imp); break;
    case SM_TYPE_Q4_K: q_quantize_q4_K(xf, blk, n, imp); break;
    case SM_TYPE_Q5_K: q_quantize_q5_K(xf, blk, n, imp); break;
    case SM_TYPE_Q6_K: q_quantize_q6_K(xf, blk, n, imp); break;
    default: break;
    }
}

static int fit_gguf(gq_grid *g, int64_t r, int64_t gi, const double *x, const float *imp, int n) {
    float xf[QK_K];
    for (int i = 0; i < n; i++) xf[i] = (float)x[i];
    uint8_t *blk = block_at(g, r, gi);
    run_codec(g->type, xf, blk, n, imp);
    float *a = g->act + r * GQ_ACT;
    switch (g->type) {
    case SM_TYPE_Q4_0:
    case SM_TYPE_Q5_0:
    case SM_TYPE_Q8_0: {
        uint16_t d;
        memcpy(&d, blk, 2);
        a[0] = h2f(d);
        if (!isfinite(a[0])) goto overflow;
        break;
    }
    case SM_TYPE_Q4_1:
    case SM_TYPE_Q5_1: {
        uint16_t d, m;
        memcpy(&d, blk, 2);
        memcpy(&m, blk + 2, 2);
        a[0] = h2f(d);
        a[1] = h2f(m);
        if (!isfinite(a[0]) || !isfinite(a[1])) goto overflow;
        break;
    }
    case SM_TYPE_Q4_K:
    case SM_TYPE_Q5_K: {
        const block_q4_K *b4 = (const block_q4_K *)blk; /* Q5_K starts with the same fields */
        const float d = h2f(b4->d), min = h2f(b4->dmin);
        if (!isfinite(d) || !isfinite(min)) goto overflow;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            q_get_scale_min_k4(j, b4->scales, &sc, &m);
            a[2 * j] = d * sc;
            a[2 * j + 1] = min * m;
        }
        break;
    }
    case SM_TYPE_Q6_K: {
        const block_q6_K *b6 = (const block_q6_K *)blk;
        const float d = h2f(b6->d);
        if (!isfinite(d)) goto overflow;
        for (int j = 0; j < QK_K / 16; j++) a[j] = d * b6->scales[j];
        break;
    }
    case SM_TYPE_Q2_K: { /* 16 sub-blocks of 16: scale and min, as q_dequantize_q2_K */
        const block_q2_K *b2 = (const block_q2_K *)blk;
        const float d = h2f(b2->d), min = h2f(b2->dmin);
        if (!isfinite(d) || !isfinite(min)) goto overflow;
        for (int j = 0; j < QK_K / 16; j++) {
            a[2 * j] = d * (b2->scales[j] & 0xF);
            a[2 * j + 1] = min * (b2->scales[j] >> 4);
        }
        break;
    }
    case SM_TYPE_Q3_K: { /* 16 signed sub-scales, as q_dequantize_q3_K */
        const block_q3_K *b3 = (const block_q3_K *)blk;
        const float d = h2f(b3->d);
        if (!isfinite(d)) goto overflow;
        for (int j = 0; j < QK_K / 16; j++) a[j] = d * q_q3_K_scale(b3->scales, j);
        break;
    }
    case SM_TYPE_IQ4_NL: {
        const block_iq4_nl *bn = (const block_iq4_nl *)blk;
        a[0] = h2f(bn->d);
        if (!isfinite(a[0])) goto overflow;
        break;
    }
    case SM_TYPE_IQ4_XS: { /* 8 sub-blocks of 32, as q_dequantize_iq4_xs */
        const block_iq4_xs *bx = (const block_iq4_xs *)blk;
        const float d = h2f(bx->d);
        if (!isfinite(d)) goto overflow;
        for (int j = 0; j < QK_K / 32; j++)
            a[j] = d * (float)((((bx->scales_l[j / 2] >> 4 * (j % 2)) & 0xf) | (((bx->scales_h >> 2 * j) & 3) << 4)) - 32);
        break;
    }
    default: break;
    }
    return 0;
overflow:
    return sm_error("gptq: row %lld, block %lld: scale overflows f16 (values too large for %s)", (long long)r,
                    (long long)gi, sm_type_name(g->type));
}

int gq_grid_fit(gq_grid *g, int64_t r, int64_t gi, const double *x, const float *imp, int n) {
    return g->is_int ? fit_int(g, r, gi, x, n) : fit_gguf(g, r, gi, x, imp, n);
}

/* The nearest level round(x / d) + off, clamped to [lo, hi]; `dflt` when the scale is 0. */
static int level(double x, double d, int off, int lo, int hi, int dflt) {
    if (d == 0) return dflt;
    double l = nearbyint(x / d) + off;
    return (int)(l < lo ? lo : l > hi ? hi : l);
}

/* The nearest of IQ4's 16 non-uniform levels times the (sub-)block scale d. */
static double iq4_level(float d, double x, uint8_t *code) {
    int L = d == 0 ? 8 : q_best_index_int8(16, sm_iq4nl_values, (float)(x / d));
    /* x / d was rounded to float: settle the neighbours on the exact distances */
    const int l0 = L;
    for (int k = l0 - 1; k <= l0 + 1; k += 2)
        if (k >= 0 && k < 16 && fabs(x - d * (float)sm_iq4nl_values[k]) < fabs(x - d * (float)sm_iq4nl_values[L]))
            L = k;
    *code = (uint8_t)L;
    return d * (float)sm_iq4nl_values[L];
}

double gq_grid_quant(const gq_grid *g, int64_t r, int64_t c, double x, uint8_t *code) {
    const float *a = g->act + r * GQ_ACT;
    int L;
    switch (g->is_int ? SM_TYPE_INVALID : g->type) {
    case SM_TYPE_INVALID: {
        const double s = a[0];
        const int z = (int)a[1];
        L = level(x, s, z, 0, g->maxq, z);
        *code = (uint8_t)L;
        return s * (L - z);
    }
    case SM_TYPE_Q4_0: L = level(x, a[0], 8, 0, 15, 8); *code = (uint8_t)L; return (float)(L - 8) * a[0];
    case SM_TYPE_Q5_0: L = level(x, a[0], 16, 0, 31, 16); *code = (uint8_t)L; return (float)(L - 16) * a[0];
    case SM_TYPE_Q8_0: L = level(x, a[0], 0, -128, 127, 0); *code = (uint8_t)(L + 128); return (float)L * a[0];
    case SM_TYPE_Q4_1: L = level(x - a[1], a[0], 0, 0, 15, 0); *code = (uint8_t)L; return (float)L * a[0] + a[1];
    case SM_TYPE_Q5_1: L = level(x - a[1], a[0], 0, 0, 31, 0); *code = (uint8_t)L; return (float)L * a[0] + a[1];
    case SM_TYPE_Q4_K:
    case SM_TYPE_Q5_K: {
        const int j = (int)(c % QK_K) / 32;
        const float d1 = a[2 * j], m1 = a[2 * j + 1];
        L = level(x + m1, d1, 0, 0, g->type == SM_TYPE_Q4_K ? 15 : 31, 0);
        *code = (uint8_t)L;
        return d1 * (float)L - m1;
    }
    case SM_TYPE_Q6_K: {
        const float ds = a[(c % QK_K) / 16];
        L = level(x, ds, 32, 0, 63, 32);
        *code = (uint8_t)L;
        return ds * (float)(L - 32);
    }
    case SM_TYPE_Q2_K: {
        const int j = (int)(c % QK_K) / 16;
        const float d1 = a[2 * j], m1 = a[2 * j + 1];
        L = level(x + m1, d1, 0, 0, 3, 0);
        *code = (uint8_t)L;
        return d1 * (float)L - m1;
    }
    case SM_TYPE_Q3_K: {
        const float ds = a[(c % QK_K) / 16];
        L = level(x, ds, 4, 0, 7, 4);
        *code = (uint8_t)L;
        return ds * (float)(L - 4);
    }
    case SM_TYPE_IQ4_NL: return iq4_level(a[0], x, code);
    case SM_TYPE_IQ4_XS: return iq4_level(a[(c % QK_K) / 32], x, code);
    default: *code = 0; return 0;
    }
}

void gq_grid_pack_row(gq_grid *g, int64_t r, const uint8_t *codes) {
    for (int64_t gi = 0; gi < g->n_groups; gi++) {
        uint8_t *blk = block_at(g, r, gi);
        const uint8_t *L = codes + gi * g->group;
        switch (g->type) {
        case SM_TYPE_Q4_0: q_pack_nibbles(L, ((block_q4_0 *)blk)->qs, QK32); break;
        case SM_TYPE_Q4_1: q_pack_nibbles(L, ((block_q4_1 *)blk)->qs, QK32); break;
        case SM_TYPE_Q5_0: q_pack_q5(L, ((block_q5_0 *)blk)->qs, ((block_q5_0 *)blk)->qh); break;
        case SM_TYPE_Q5_1: q_pack_q5(L, ((block_q5_1 *)blk)->qs, ((block_q5_1 *)blk)->qh); break;
        case SM_TYPE_Q8_0:
            for (int j = 0; j < QK32; j++) ((block_q8_0 *)blk)->qs[j] = (int8_t)(L[j] - 128);
            break;
        case SM_TYPE_Q4_K: q_pack_q4_K(L, ((block_q4_K *)blk)->qs); break;
        case SM_TYPE_Q5_K: q_pack_q5_K(L, ((block_q5_K *)blk)->qh, ((block_q5_K *)blk)->qs); break;
        /* codes 0..63: the same values as int8_t */
        case SM_TYPE_Q6_K: q_pack_q6_K((const int8_t *)L, (block_q6_K *)blk); break;
        case SM_TYPE_Q2_K: q_pack_2bit(L, ((block_q2_K *)blk)->qs); break;
        case SM_TYPE_Q3_K: { /* codes 0..7; q_q3_K_pack splits off the high bit in place */
            int8_t l3[QK_K];
            for (int j = 0; j < QK_K; j++) l3[j] = (int8_t)L[j];
            q_q3_K_pack(l3, (block_q3_K *)blk);
            break;
        }
        case SM_TYPE_IQ4_NL: q_pack_nibbles(L, ((block_iq4_nl *)blk)->qs, QK32); break;
        case SM_TYPE_IQ4_XS: q_pack_nibbles(L, ((block_iq4_xs *)blk)->qs, QK_K); break;
        default: break;
        }
    }
}

int gq_fit_passes(const sm_gptq_opts *o, const gq_grid *g) {
    if (g->is_int) return 1;
    if (o->fit_passes > 0) return o->fit_passes;
    return g->type == SM_TYPE_Q2_K || g->type == SM_TYPE_Q3_K ? 2 : 1;
}

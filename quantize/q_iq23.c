/* q_iq23.c - the lattice i-quants IQ2_XXS, IQ2_XS, IQ2_S (8-D grids of {1,3,5}) and IQ3_XXS,
 * IQ3_S (4-D grids of {1,..,15}), scalar.
 *
 * All five quantize a super-block of 256 in groups of 32 or 16 values: signs are split off
 * (IQ2_XXS, IQ2_XS, IQ3_XXS keep an even number of minus signs per 8 values, flipping the
 * least important one, so 7 sign bits suffice), then a scale search over 2*kmax-1 +- steps
 * rounds the magnitudes to the lattice, taking the weighted-nearest neighbour when the rounded
 * point is off the grid; the group scales are then coded in 4 bits against max/31. One
 * parameterized routine reproduces the five variants of ggml's search, in ggml's order. */
#include "quantize/codec_internal.h"
#include "kernels/kernels.h"
#include "quantize/iq_grids.h"

#include <float.h>
#include <math.h>

enum recheck { RECHECK_ALL, RECHECK_ALL_IF_OFF, RECHECK_OFF_ONLY };
enum weights { W_IMATRIX_HALF_SIGMA, W_X2, W_QUARTER_SIGMA };

typedef struct iq_spec {
    q_iq_grid_id grid;
    int group;            /* values per group scale: 32 or 16 */
    int kmax;             /* levels per coordinate: 3 (IQ2) or 8 (IQ3) */
    int ntry;             /* scale candidates -ntry..ntry */
    float step;           /* ... in steps of this */
    bool parity;          /* even number of minus signs per 8 values */
    bool qp_start;        /* first scale from make_qp_quants (IQ2_XXS), else max/(2kmax-1) */
    bool start_on_grid;   /* the initial on-grid flags (before any candidate is taken) */
    enum recheck recheck; /* which sub-groups are re-rounded with the final scale */
    enum weights weights; /* without imatrix: x^2 / sigma2/4 + x^2; with: sigma2 = 2 or 1 x mean x^2 */
    float eps;            /* groups below this maximum are zero */
    float fudge;          /* the super-block scale is stored times this */
} iq_spec;

static const iq_spec IQ2_XXS = {Q_IQ_GRID_2XXS, 32, 3, 6, 0.1f, true, true, true, RECHECK_ALL, W_IMATRIX_HALF_SIGMA, GROUP_MAX_EPS, 1.0f};
static const iq_spec IQ2_XS = {Q_IQ_GRID_2XS, 16, 3, 9, 0.1f, true, false, true, RECHECK_OFF_ONLY, W_IMATRIX_HALF_SIGMA, GROUP_MAX_EPS, 1.0f};
static const iq_spec IQ2_S = {Q_IQ_GRID_2S, 16, 3, 9, 0.1f, false, false, true, RECHECK_OFF_ONLY, W_QUARTER_SIGMA, 1e-8f, 0.9875f};
static const iq_spec IQ3_XXS = {Q_IQ_GRID_3XXS, 32, 8, 15, 0.2f, true, false, true, RECHECK_OFF_ONLY, W_X2, 1e-8f, 1.0125f};
static const iq_spec IQ3_S = {Q_IQ_GRID_3S, 32, 8, 9, 0.2f, false, false, false, RECHECK_ALL_IF_OFF, W_X2, 0.0f, 1.033f};

/* The grid point among the neighbours of an off-grid index nearest to scale*q ~ xval
 * (weighted; the first of equals); its levels into L.
 *
 * A coordinate takes one of kmax values q = 2l+1, so each term w*(scale*q - x)^2 is computed
 * once per coordinate and level, before the neighbours are scanned; a neighbour's distance
 * is then the same terms added in the same order as ggml adds them, so the same bits
 * (q_iq_nearest_avx2 does the same eight neighbours at a time). */
static inline int nearest_scalar(const uint16_t *nb, const uint16_t *codes, const float *xval, const float *w,
                                 float scale, const int dim, const int bits) {
    float terms[8][8];
    for (int i = 0; i < dim; ++i)
        for (int l = 0; l < 1 << bits; ++l) {
            float diff = scale * (float)(2 * l + 1) - xval[i];
            terms[i][l] = w[i] * diff * diff;
        }
    float best_d2 = FLT_MAX;
    int best = -1;
    for (int j = 1; j <= nb[0]; ++j) {
        float d2 = 0;
        for (int i = 0; i < dim; ++i) d2 += terms[i][codes[j] >> bits * i & ((1 << bits) - 1)];
        if (d2 < best_d2) { best_d2 = d2; best = nb[j]; }
    }
    return best;
}

static int best_neighbour(const q_iq_grid *g, bool simd, int u, const float *xval, const float *w, float scale,
                          int8_t *L) {
    const int32_t off = -g->map[u] - 1;
    const uint16_t *nb = g->neighbours + off, *codes = g->codes + off;
    int best = simd               ? q_iq_nearest_avx2(nb, codes, g->dim, xval, w, scale)
               : g->dim == 8 ? nearest_scalar(nb, codes, xval, w, scale, 8, 2) /* constant dims: unrolled */
                             : nearest_scalar(nb, codes, xval, w, scale, 4, 3);
    if (best < 0) best = nb[1]; /* no finite distance (ggml asserts): any point */
    const int8_t *pg = g->pos + 8 * best;
    for (int i = 0; i < g->dim; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return best;
}

/* Rounds sub-group xval[dim] at inverse scale id to levels L; off the grid, the best
 * neighbour at `scale`. Returns whether the rounded point was on the grid. */
static bool round_sub(const q_iq_grid *g, const iq_spec *s, bool simd, const float *xval, const float *waux, float id,
                      float scale, int8_t *L) {
    int u = 0;
    for (int i = 0; i < g->dim; ++i) {
        int l = q_nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)Q_MAX(0, Q_MIN(s->kmax - 1, l));
        u |= L[i] << g->bits * i;
    }
    if (g->map[u] >= 0) return true;
    best_neighbour(g, simd, u, xval, waux, scale, L);
    return false;
}

static int grid_index(const q_iq_grid *g, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < g->dim; ++i) u |= L[i] << g->bits * i;
    return g->map[u]; /* on the grid by construction */
}

/* sumqx / sumq2 of levels L against xval */
static void iq_sums(int n, const float *w, const float *xval, const int8_t *L, float *sumqx, float *sumq2) {
    float a = 0, b = 0;
    for (int i = 0; i < n; ++i) {
        float q = 2 * L[i] + 1;
        a += w[i] * xval[i] * q;
        b += w[i] * q * q;
    }
    *sumqx = a, *sumq2 = b;
}

/* Magnitudes into xval and sign bits (one byte per 8 values) into signs. */
static void split_signs(const iq_spec *s, int n, const float *xb, const float *weight, float *xval, uint8_t *signs) {
    for (int k = 0; k < n / 8; ++k) {
        int nflip = 0;
        uint8_t m = 0;
        for (int i = 0; i < 8; ++i) {
            if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
            else { xval[8 * k + i] = -xb[8 * k + i]; ++nflip; m |= (uint8_t)(1 << i); }
        }
        if (s->parity) {
            if (nflip % 2) { /* flip the least important value back */
                int imin = 0;
                float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                for (int i = 1; i < 8; ++i) {
                    float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                    if (ax < min) { min = ax; imin = i; }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                m ^= (uint8_t)(1 << imin);
            }
            m &= 127;
        }
        signs[k] = m;
    }
}

/* One group: levels into L, sign bytes into signs, its scale into *scale. False for a group
 * that is all zero (nothing of it is stored). */
static bool iq_group(const iq_spec *s, const q_iq_grid *g, bool simd, const float *xb, const float *weight, int8_t *L,
                     uint8_t *signs, float *scale_out) {
    const int n = s->group, nsub = n / g->dim;
    float xval[32], waux[32];
    int8_t Laux[32];
    bool on_grid[8], on_grid_aux[8];
    for (int i = 0; i < n; ++i) waux[i] = sqrtf(weight[i]);
    split_signs(s, n, xb, weight, xval, signs);
    float max = xval[0];
    for (int i = 1; i < n; ++i) max = Q_MAX(max, xval[i]);
    memset(L, 0, (size_t)n);
    *scale_out = 0;
    if (s->eps > 0 ? max < s->eps : !max) return false;
    float scale, ref = max, best = 0;
    if (s->qp_start) {
        scale = q_make_qp_quants(n, s->kmax + 1, xval, (uint8_t *)L, weight);
        ref = scale * s->kmax;
        if (ref <= 0) { memset(L, 0, (size_t)n); return false; }
    } else {
        scale = max / (2 * s->kmax - 1);
    }
    for (int k = 0; k < nsub; ++k) on_grid[k] = s->start_on_grid;
    for (int is = -s->ntry; is <= s->ntry; ++is) {
        float id = (2 * s->kmax - 1 + is * s->step) / ref;
        float this_scale = 1 / id;
        for (int k = 0; k < nsub; ++k)
            on_grid_aux[k] = round_sub(g, s, simd, xval + g->dim * k, waux + g->dim * k, id, this_scale,
                                       Laux + g->dim * k);
        float sumqx, sumq2;
        iq_sums(n, weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, (size_t)n);
            memcpy(on_grid, on_grid_aux, sizeof on_grid);
        }
    }
    int n_off = 0;
    for (int k = 0; k < nsub; ++k) n_off += !on_grid[k];
    if (scale > 0 && (s->recheck == RECHECK_ALL || n_off > 0)) {
        float id = 1 / scale;
        for (int k = 0; k < nsub; ++k) {
            if (s->recheck == RECHECK_OFF_ONLY && on_grid[k]) continue;
            round_sub(g, s, simd, xval + g->dim * k, waux + g->dim * k, id, scale, L + g->dim * k);
        }
        float sumqx, sumq2;
        iq_sums(n, weight, xval, L, &sumqx, &sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) { /* ggml: should not happen; keep the scale positive, flip the signs */
        scale = -scale;
        for (int k = 0; k < n / 8; ++k) signs[k] = (uint8_t)(s->parity ? ~signs[k] & 127 : ~signs[k]);
    }
    *scale_out = scale;
    return true;
}

static void iq_weights(const iq_spec *s, const float *xb, const float *qw, float sigma2, int n, float *weight) {
    for (int i = 0; i < n; ++i) {
        if (qw) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        else if (s->weights == W_QUARTER_SIGMA) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
        else weight[i] = xb[i] * xb[i];
    }
}

/* Stores group ib's grid indices and signs into super-block y; slot counts the groups stored
 * before it (IQ3_S puts indices and signs there: ggml does not advance past a zero group). */
typedef void (*pack_fn)(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs);
/* Stores d and the 4-bit group scale codes. */
typedef void (*scales_fn)(uint8_t *y, uint16_t d, const int *codes);

static void iq_quantize(const iq_spec *s, const float *x, void *vy, size_t block_bytes, int64_t n, const float *qw,
                        pack_fn pack, scales_fn put_scales) {
    const q_iq_grid *g = q_iq_grid_get(s->grid);
    const bool simd = sm_isa_active() >= SM_ISA_AVX2;
    const int ngroups = QK_K / s->group;
    uint8_t *y = vy;
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl, y += block_bytes) {
        const float *xbl = x + QK_K * ibl;
        memset(y, 0, block_bytes);
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        const float sigma2 = s->weights == W_IMATRIX_HALF_SIGMA ? sumx2 / QK_K : 2 * sumx2 / QK_K;
        float scales[16], max_scale = 0, weight[32];
        int slot = 0;
        for (int ib = 0; ib < ngroups; ++ib) {
            const float *xb = xbl + s->group * ib;
            int8_t L[32];
            uint8_t signs[4];
            iq_weights(s, xb, qw ? qw + QK_K * ibl + s->group * ib : NULL, sigma2, s->group, weight);
            if (iq_group(s, g, simd, xb, weight, L, signs, &scales[ib])) pack(y, ib, slot++, g, L, signs);
            max_scale = Q_MAX(max_scale, scales[ib]);
        }
        if (!max_scale) { memset(y, 0, block_bytes); continue; }
        const float d = max_scale / 31, id = 1 / d;
        int codes[16];
        for (int ib = 0; ib < ngroups; ++ib) {
            int l = q_nearest_int(0.5f * (id * scales[ib] - 1));
            codes[ib] = Q_MAX(0, Q_MIN(15, l));
        }
        put_scales(y, f2h(d * s->fudge), codes);
    }
}

static void or32(uint8_t *p, uint32_t v) {
    uint32_t a;
    memcpy(&a, p, 4);
    a |= v;
    memcpy(p, &a, 4);
}

static void put_d(uint8_t *y, uint16_t d) { memcpy(y, &d, 2); }

/* IQ2_XXS: per group of 32, a u32 of four 8-bit grid indices, a u32 of four 7-bit signs and
 * the scale in its top 4 bits. */
static void pack_iq2_xxs(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs) {
    (void)slot;
    uint8_t *q = y + offsetof(block_iq2_xxs, qs) + 8 * ib;
    for (int k = 0; k < 4; ++k) {
        or32(q, (uint32_t)grid_index(g, L + 8 * k) << 8 * k);
        or32(q + 4, (uint32_t)signs[k] << 7 * k);
    }
}
static void scales_iq2_xxs(uint8_t *y, uint16_t d, const int *codes) {
    put_d(y, d);
    for (int ib = 0; ib < 8; ++ib) or32(y + offsetof(block_iq2_xxs, qs) + 8 * ib + 4, (uint32_t)codes[ib] << 28);
}

/* IQ2_XS: per 8 values a u16 of a 9-bit grid index and 7 sign bits; 4-bit scales per 16. */
static void pack_iq2_xs(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs) {
    (void)slot;
    block_iq2_xs *b = (block_iq2_xs *)y;
    for (int k = 0; k < 2; ++k) b->qs[2 * ib + k] = (uint16_t)(grid_index(g, L + 8 * k) | signs[k] << 9);
}
/* the two-per-byte 4-bit scales of IQ2_XS / IQ2_S */
static void scales_nibbles(uint8_t *scales, const int *codes, int n) {
    for (int ib = 0; ib < n; ++ib) {
        if (ib % 2 == 0) scales[ib / 2] = (uint8_t)codes[ib];
        else scales[ib / 2] |= (uint8_t)(codes[ib] << 4);
    }
}
static void scales_iq2_xs(uint8_t *y, uint16_t d, const int *codes) {
    put_d(y, d);
    scales_nibbles(((block_iq2_xs *)y)->scales, codes, 16);
}

/* IQ2_S: 10-bit grid indices (low bytes in qs, high bits in qh), full sign bytes after them. */
static void pack_iq2_s(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs) {
    (void)slot;
    block_iq2_s *b = (block_iq2_s *)y;
    for (int k = 0; k < 2; ++k) {
        const int gi = grid_index(g, L + 8 * k), i8 = 2 * ib + k;
        b->qs[i8] = (uint8_t)(gi & 255);
        b->qh[i8 / 4] |= (uint8_t)((gi >> 8) << 2 * (i8 % 4));
        b->qs[QK_K / 8 + i8] = signs[k];
    }
}
static void scales_iq2_s(uint8_t *y, uint16_t d, const int *codes) {
    put_d(y, d);
    scales_nibbles(((block_iq2_s *)y)->scales, codes, 16);
}

/* IQ3_XXS: 8-bit grid indices per 4 values, then per group a u32 of 7-bit signs + scale. */
static void pack_iq3_xxs(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs) {
    (void)slot;
    block_iq3_xxs *b = (block_iq3_xxs *)y;
    for (int k = 0; k < 8; ++k) b->qs[8 * ib + k] = (uint8_t)grid_index(g, L + 4 * k);
    or32(b->qs + QK_K / 4 + 4 * ib, (uint32_t)signs[0] | (uint32_t)signs[1] << 7 | (uint32_t)signs[2] << 14 |
                                        (uint32_t)signs[3] << 21);
}
static void scales_iq3_xxs(uint8_t *y, uint16_t d, const int *codes) {
    put_d(y, d);
    for (int ib = 0; ib < 8; ++ib) or32(((block_iq3_xxs *)y)->qs + QK_K / 4 + 4 * ib, (uint32_t)codes[ib] << 28);
}

/* IQ3_S: 9-bit grid indices (low bytes in qs, ninth bits in qh), sign bytes, 4-bit scales. */
static void pack_iq3_s(uint8_t *y, int ib, int slot, const q_iq_grid *g, const int8_t *L, const uint8_t *signs) {
    block_iq3_s *b = (block_iq3_s *)y;
    for (int k = 0; k < 8; ++k) {
        const int gi = grid_index(g, L + 4 * k);
        b->qs[8 * slot + k] = (uint8_t)(gi & 255);
        b->qh[ib] |= (uint8_t)((gi >> 8) << k);
    }
    memcpy(b->signs + 4 * slot, signs, 4);
}
static void scales_iq3_s(uint8_t *y, uint16_t d, const int *codes) {
    put_d(y, d);
    scales_nibbles(((block_iq3_s *)y)->scales, codes, 8);
}

void q_quantize_iq2_xxs(const float *x, void *y, int64_t n, const float *qw) {
    iq_quantize(&IQ2_XXS, x, y, sizeof(block_iq2_xxs), n, qw, pack_iq2_xxs, scales_iq2_xxs);
}
void q_quantize_iq2_xs(const float *x, void *y, int64_t n, const float *qw) {
    iq_quantize(&IQ2_XS, x, y, sizeof(block_iq2_xs), n, qw, pack_iq2_xs, scales_iq2_xs);
}
void q_quantize_iq2_s(const float *x, void *y, int64_t n, const float *qw) {
    iq_quantize(&IQ2_S, x, y, sizeof(block_iq2_s), n, qw, pack_iq2_s, scales_iq2_s);
}
void q_quantize_iq3_xxs(const float *x, void *y, int64_t n, const float *qw) {
    iq_quantize(&IQ3_XXS, x, y, sizeof(block_iq3_xxs), n, qw, pack_iq3_xxs, scales_iq3_xxs);
}
void q_quantize_iq3_s(const float *x, void *y, int64_t n, const float *qw) {
    iq_quantize(&IQ3_S, x, y, sizeof(block_iq3_s), n, qw, pack_iq3_s, scales_iq3_s);
}

/* lanes_impl.h - (internal) the SIMD codecs, written once over a small vector vocabulary and
 * compiled per instruction set: quantize/lanes_avx2.c (8 lanes) and quantize/lanes_avx512.c
 * (16 lanes) define the vocabulary (vf: LANES floats, vi: LANES int32, vm: a lane mask) and
 * QL_NAME(), then include this file.
 *
 * Why the bytes stay identical to the scalar code (and so to ggml): ggml's searches are
 * sequential per group of 16 or 32 values, but the groups are independent. Here each lane
 * carries one group and runs exactly the scalar sequence of float operations (same order, no
 * reassociation, no contraction), with data-dependent branches turned into lane masks. The
 * candidate scales of a search are independent too: they are evaluated two at a time for
 * instruction-level parallelism and then accepted strictly in ggml's order. Everything that
 * is not per group (super-block scales, f16 rounding, packing) is the scalar code. */

#include <math.h>

#define GMAX 32 /* largest group */

/* ---- helpers over the vocabulary ---- */

static inline vf v_min(vf a, vf b) { return v_blend(v_lt(b, a), b, a); }  /* b < a ? b : a */
static inline vf v_max(vf a, vf b) { return v_blend(v_gt(b, a), b, a); }  /* b > a ? b : a */
static inline vi vi_clamp(vi l, int lo, int hi) { return vi_min(vi_max(l, vi_set1(lo)), vi_set1(hi)); }
/* ggml's nearest_int, lane-wise: the same bits, also outside its valid range */
static inline vi v_nearest(vf x) { return vi_sub(vi_and(v_bits(v_add(x, v_set1(12582912.f))), vi_set1(0x007fffff)), vi_set1(0x00400000)); }
/* a level l = clamp(nearest(s * y), lo, hi), as a float */
static inline vf v_level(vf s, vf y, int lo, int hi) { return vi_to_f(vi_clamp(v_nearest(v_mul(s, y)), lo, hi)); }

/* Gathers LANES groups of n values (group g at src + g*n) into xt[i] = {group g's value i}. */
static void transpose_in(const float *src, int n, vf *xt) {
    float tmp[GMAX * LANES];
    for (int g = 0; g < LANES; g++)
        for (int i = 0; i < n; i++) tmp[i * LANES + g] = src[g * n + i];
    for (int i = 0; i < n; i++) xt[i] = v_load(tmp + i * LANES);
}

/* The levels of LANES groups as int32 [i][lane]. */
static void levels_out(const vf *Lt, int n, int32_t *out) {
    for (int i = 0; i < n; i++) vi_store(out + i * LANES, vi_from_f(Lt[i]));
}

/* ---- make_qkx2_quants (use_mad selects |diff| or diff^2) and make_qkx3_quants (flat_le:
 * "max <= min" instead of "max == min", always diff^2), lane-parallel. A candidate scale
 * depends on the min the previous ones left, so candidates run strictly in order; KV
 * independent vectors of lanes are searched together instead. ---- */

#define KV 2

typedef struct kx_params {
    int n, nmax;
    float rmin, rdelta;
    int nstep;
    bool use_mad, flat_le;
} kx_params;

static inline vf kx_diff(const kx_params *p, vf scale, vf L, vf min, vf x) {
    vf diff = v_sub(v_add(v_mul(scale, L), min), x);
    return p->use_mad ? v_abs(diff) : v_mul(diff, diff);
}

/* Levels into Lt and the scales into scale[KV]; the_min[KV] gets -min (ggml's convention). */
static void lanes_qkx(const kx_params *p, const vf (*xt)[KV], const vf (*wt)[KV], vf (*Lt)[KV], vf *scale,
                      vf *the_min) {
    const int n = p->n;
    vf min[KV], max[KV], sum_w[KV], sum_x[KV], best[KV], min0[KV];
    vm flat[KV];
    vf Laux[GMAX][KV];
    for (int v = 0; v < KV; v++) {
        min[v] = max[v] = xt[0][v];
        sum_w[v] = wt[0][v];
        sum_x[v] = v_mul(sum_w[v], xt[0][v]);
    }
    for (int i = 1; i < n; i++) {
        for (int v = 0; v < KV; v++) {
            min[v] = v_blend(v_lt(xt[i][v], min[v]), xt[i][v], min[v]);
            max[v] = v_blend(v_gt(xt[i][v], max[v]), xt[i][v], max[v]);
            sum_w[v] = v_add(sum_w[v], wt[i][v]);
            sum_x[v] = v_add(sum_x[v], v_mul(wt[i][v], xt[i][v]));
        }
    }
    for (int v = 0; v < KV; v++) {
        min[v] = v_blend(v_gt(min[v], v_set1(0)), v_set1(0), min[v]);
        min0[v] = min[v];
        flat[v] = p->flat_le ? v_le(max[v], min[v]) : v_eq(max[v], min[v]);
        vf iscale = v_div(v_set1((float)p->nmax), v_sub(max[v], min[v]));
        scale[v] = v_div(v_set1(1), iscale);
        best[v] = v_set1(0);
        for (int i = 0; i < n; i++) {
            Lt[i][v] = v_level(iscale, v_sub(xt[i][v], min[v]), 0, p->nmax);
            best[v] = v_add(best[v], v_mul(wt[i][v], kx_diff(p, scale[v], Lt[i][v], min[v], xt[i][v])));
        }
    }
    for (int is = 0; is <= p->nstep; ++is) {
        const vf c = v_set1(p->rmin + p->rdelta * is + p->nmax);
        vf iscale[KV], sl[KV], sl2[KV], sxl[KV];
        for (int v = 0; v < KV; v++) {
            iscale[v] = v_div(c, v_sub(max[v], min[v]));
            sl[v] = sl2[v] = sxl[v] = v_set1(0);
        }
        for (int i = 0; i < n; i++) {
            for (int v = 0; v < KV; v++) {
                vf l = v_level(iscale[v], v_sub(xt[i][v], min[v]), 0, p->nmax);
                Laux[i][v] = l;
                vf wl = v_mul(wt[i][v], l);
                sl[v] = v_add(sl[v], wl);
                sl2[v] = v_add(sl2[v], v_mul(wl, l));
                sxl[v] = v_add(sxl[v], v_mul(wl, xt[i][v]));
            }
        }
        vm ok[KV];
        vf D[KV], this_scale[KV], this_min[KV], err[KV];
        bool any = false;
        for (int v = 0; v < KV; v++) {
            D[v] = v_sub(v_mul(sum_w[v], sl2[v]), v_mul(sl[v], sl[v]));
            ok[v] = v_gt(D[v], v_set1(0));
            any = any || m_any(ok[v]);
        }
        if (!any) continue;
        for (int v = 0; v < KV; v++) {
            this_scale[v] = v_div(v_sub(v_mul(sum_w[v], sxl[v]), v_mul(sum_x[v], sl[v])), D[v]);
            this_min[v] = v_div(v_sub(v_mul(sl2[v], sum_x[v]), v_mul(sl[v], sxl[v])), D[v]);
            vm pos = v_gt(this_min[v], v_set1(0));
            this_min[v] = v_blend(pos, v_set1(0), this_min[v]);
            this_scale[v] = v_blend(pos, v_div(sxl[v], sl2[v]), this_scale[v]);
            err[v] = v_set1(0);
        }
        for (int i = 0; i < n; i++)
            for (int v = 0; v < KV; v++)
                err[v] = v_add(err[v], v_mul(wt[i][v], kx_diff(p, this_scale[v], Laux[i][v], this_min[v], xt[i][v])));
        for (int v = 0; v < KV; v++) {
            vm take = m_and(ok[v], v_lt(err[v], best[v]));
            if (!m_any(take)) continue;
            for (int i = 0; i < n; i++) Lt[i][v] = v_blend(take, Laux[i][v], Lt[i][v]);
            best[v] = v_blend(take, err[v], best[v]);
            scale[v] = v_blend(take, this_scale[v], scale[v]);
            min[v] = v_blend(take, this_min[v], min[v]);
        }
    }
    for (int v = 0; v < KV; v++) {
        for (int i = 0; i < n; i++) Lt[i][v] = v_blend(flat[v], v_set1(0), Lt[i][v]);
        the_min[v] = v_neg(v_blend(flat[v], min0[v], min[v]));
        scale[v] = v_blend(flat[v], v_set1(0), scale[v]);
    }
}

/* ---- make_qx_quants with rmse_type 1 (weights wt = qw or x^2), lane-parallel. Levels
 * returned in Lt are l + nmax (0 for an all-zero group). ---- */

static vf lanes_qx(int n, int nmax, const vf *xt, const vf *wt, vf *Lt) {
    vf amax = v_set1(0), max = v_set1(0);
    vf wx[GMAX];
    for (int i = 0; i < n; i++) {
        vf ax = v_abs(xt[i]);
        vm m = v_gt(ax, amax);
        amax = v_blend(m, ax, amax);
        max = v_blend(m, xt[i], max);
        wx[i] = v_mul(wt[i], xt[i]);
    }
    const vm zero = v_lt(amax, v_set1(GROUP_MAX_EPS));
    vf iscale = v_div(v_set1((float)-nmax), max);
    vf sumlx = v_set1(0), suml2 = v_set1(0);
    for (int i = 0; i < n; i++) {
        vf l = v_level(iscale, xt[i], -nmax, nmax - 1);
        Lt[i] = l;
        sumlx = v_add(sumlx, v_mul(wx[i], l));
        suml2 = v_add(suml2, v_mul(v_mul(wt[i], l), l));
    }
    vf scale = v_blend(v_ne(suml2, v_set1(0)), v_div(sumlx, suml2), v_set1(0));
    vf best = v_mul(scale, sumlx);
    /* the candidates -9..-1, 1..9 in ggml's order, evaluated in pairs */
    static const int8_t CANDS[18] = {-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int k = 0; k < 18; k += 2) {
        vf isa = v_div(v_set1(-(nmax + 0.1f * CANDS[k])), max);
        vf isb = v_div(v_set1(-(nmax + 0.1f * CANDS[k + 1])), max);
        vf La[GMAX], Lb[GMAX];
        vf slxa = v_set1(0), sl2a = v_set1(0), slxb = v_set1(0), sl2b = v_set1(0);
        for (int i = 0; i < n; i++) {
            vf la = v_level(isa, xt[i], -nmax, nmax - 1), lb = v_level(isb, xt[i], -nmax, nmax - 1);
            La[i] = la;
            Lb[i] = lb;
            slxa = v_add(slxa, v_mul(wx[i], la));
            slxb = v_add(slxb, v_mul(wx[i], lb));
            sl2a = v_add(sl2a, v_mul(v_mul(wt[i], la), la));
            sl2b = v_add(sl2b, v_mul(v_mul(wt[i], lb), lb));
        }
        for (int c = 0; c < 2; c++) {
            vf slx = c ? slxb : slxa, sl2 = c ? sl2b : sl2a;
            vm take = m_and(v_gt(sl2, v_set1(0)), v_gt(v_mul(slx, slx), v_mul(best, sl2)));
            if (!m_any(take)) continue;
            const vf *Lc = c ? Lb : La;
            for (int i = 0; i < n; i++) Lt[i] = v_blend(take, Lc[i], Lt[i]);
            vf ns = v_div(slx, sl2);
            scale = v_blend(take, ns, scale);
            best = v_blend(take, v_mul(ns, slx), best);
        }
    }
    for (int i = 0; i < n; i++) Lt[i] = v_blend(zero, v_set1(0), v_add(Lt[i], v_set1((float)nmax)));
    return v_blend(zero, v_set1(0), scale);
}

/* ---- the k-quants with mins (Q2_K: groups of 16; Q4_K, Q5_K: groups of 32): one step
 * searches KV*LANES groups, i.e. kq->sb super-blocks, with lanes_qkx ---- */

#define KQ_MAXSB (KV * LANES / 8) /* super-blocks per step with groups of 32 */

typedef struct kq_type {
    int gsize, nmax, sb;          /* group size, largest level, super-blocks per step */
    size_t block_bytes;
    kx_params ref, weighted;      /* the searches without and with importance weights */
    bool ref_weights_abs;         /* reference weights |x| (Q2_K) or av_x + |x| (Q4_K, Q5_K) */
    float sigma2_mul;             /* weighted sigma2 = sigma2_mul * sum x^2 / 256 */
    /* super-block scales into the block from the groups' scales, mins (and weight sums sw
     * when weighted); then each group's effective scale d and min dm */
    void (*head)(const float *scales, const float *mins, const float *sw, uint8_t *blk, float *d, float *dm);
    void (*pack)(const uint8_t *L, uint8_t *blk);
} kq_type;

/* Gathers KV*LANES groups of n values (group g at src + g*n): xt[i][v] lane k = group
 * v*LANES + k's value i. */
static void transpose_kv(const float *src, int n, vf (*xt)[KV]) {
    for (int v = 0; v < KV; v++) {
        vf t[GMAX];
        transpose_in(src + (size_t)v * LANES * n, n, t);
        for (int i = 0; i < n; i++) xt[i][v] = t[i];
    }
}

/* Levels (natural order, into L) of T->sb consecutive super-blocks, written to blocks blk;
 * qw holds their importance weights (T->sb * 256) or is NULL. */
static void kq_step(const kq_type *T, const float *x, const float *qw, uint8_t *blk, uint8_t *L) {
    const int n = T->gsize, ng = QK_K / n; /* groups per super-block */
    vf xt[GMAX][KV], wt[GMAX][KV], Lt[GMAX][KV], scale[KV], the_min[KV];
    float scales[KV * LANES], mins[KV * LANES], sw[KV * LANES], d[KV * LANES], dm[KV * LANES];
    transpose_kv(x, n, xt);
    if (qw) {
        float w[KQ_MAXSB * QK_K];
        for (int sb = 0; sb < T->sb; sb++) {
            const float *xs = x + QK_K * sb, *qs = qw + QK_K * sb;
            float sumx2 = 0;
            for (int l = 0; l < QK_K; ++l) sumx2 += xs[l] * xs[l];
            vf sigma2 = v_set1(T->sigma2_mul * sumx2 / QK_K);
            for (int k = 0; k < QK_K; k += LANES) {
                vf xv = v_load(xs + k);
                v_store(w + QK_K * sb + k, v_mul(v_load(qs + k), v_sqrt(v_add(sigma2, v_mul(xv, xv)))));
            }
        }
        transpose_kv(w, n, wt);
        for (int v = 0; v < KV; v++) {
            vf s = v_set1(0);
            for (int i = 0; i < n; i++) s = v_add(s, wt[i][v]);
            v_store(sw + LANES * v, s);
        }
    } else {
        for (int v = 0; v < KV; v++) {
            vf av_x = v_set1(0);
            if (!T->ref_weights_abs) {
                vf s2 = v_set1(0);
                for (int i = 0; i < n; i++) s2 = v_add(s2, v_mul(xt[i][v], xt[i][v]));
                av_x = v_sqrt(v_div(s2, v_set1((float)n)));
            }
            for (int i = 0; i < n; i++) wt[i][v] = T->ref_weights_abs ? v_abs(xt[i][v]) : v_add(av_x, v_abs(xt[i][v]));
        }
    }
    lanes_qkx(qw ? &T->weighted : &T->ref, (const vf(*)[KV])xt, (const vf(*)[KV])wt, Lt, scale, the_min);
    for (int v = 0; v < KV; v++) {
        v_store(scales + LANES * v, scale[v]);
        v_store(mins + LANES * v, the_min[v]);
    }
    for (int sb = 0; sb < T->sb; sb++)
        T->head(scales + ng * sb, mins + ng * sb, qw ? sw + ng * sb : NULL, blk + T->block_bytes * sb, d + ng * sb,
                dm + ng * sb);
    /* re-round against the stored scales (groups whose scale is 0 keep their levels) */
    for (int v = 0; v < KV; v++) {
        const vf dv = v_load(d + LANES * v), dmv = v_load(dm + LANES * v);
        const vm live = v_ne(dv, v_set1(0));
        int32_t Li[GMAX * LANES];
        for (int i = 0; i < n; i++) {
            vf l = vi_to_f(vi_clamp(v_nearest(v_div(v_add(xt[i][v], dmv), dv)), 0, T->nmax));
            vi_store(Li + i * LANES, vi_from_f(v_blend(live, l, Lt[i][v])));
        }
        for (int g = 0; g < LANES; g++)
            for (int i = 0; i < n; i++) L[n * (LANES * v + g) + i] = (uint8_t)Li[i * LANES + g];
    }
}

/* The super-blocks of nrows rows, T->sb at a time across row ends; a last partial step is
 * padded with zeros and goes to scratch blocks (discarded). */
static void kq_rows(const kq_type *T, const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    const int64_t nb = n_per_row / QK_K, total = nrows * nb;
    uint8_t L[KQ_MAXSB * QK_K], scratch[KQ_MAXSB * sizeof(block_q5_K)];
    float xp[KQ_MAXSB * QK_K], wp[KQ_MAXSB * QK_K];
    for (int64_t k = 0; k < total; k += T->sb) {
        const int64_t cnt = total - k < T->sb ? total - k : T->sb;
        const float *xs = x + QK_K * k;
        uint8_t *blk = (uint8_t *)vy + (size_t)k * T->block_bytes;
        if (cnt < T->sb) {
            memset(xp, 0, sizeof xp);
            memcpy(xp, xs, sizeof(float) * QK_K * (size_t)cnt);
            xs = xp;
            blk = scratch;
        }
        if (qw) {
            memset(wp, 0, sizeof wp);
            for (int64_t sb = 0; sb < cnt; sb++) memcpy(wp + QK_K * sb, qw + QK_K * ((k + sb) % nb), sizeof(float) * QK_K);
        }
        kq_step(T, xs, qw ? wp : NULL, blk, L);
        for (int64_t sb = 0; sb < cnt; sb++) T->pack(L + QK_K * sb, blk + T->block_bytes * sb);
        if (blk == scratch) memcpy((uint8_t *)vy + (size_t)k * T->block_bytes, scratch, T->block_bytes * (size_t)cnt);
    }
}

/* Q4_K and Q5_K share the header layout (d, dmin, 12 scale bytes) */
static void k4_effective(const uint8_t *blk, float *d, float *dm) {
    const block_q4_K *y = (const block_q4_K *)blk;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        q_get_scale_min_k4(j, y->scales, &sc, &m);
        d[j] = h2f(y->d) * sc;
        dm[j] = h2f(y->dmin) * m;
    }
}

static void q4_K_head(const float *scales, const float *mins, const float *sw, uint8_t *blk, float *d, float *dm) {
    block_q4_K *y = (block_q4_K *)blk;
    if (sw) q_k4_weighted_superscales(scales, mins, sw, false, &y->d, &y->dmin, y->scales);
    else q_k4_ref_superscales(scales, mins, &y->d, &y->dmin, y->scales);
    k4_effective(blk, d, dm);
}

static void q5_K_head(const float *scales, const float *mins, const float *sw, uint8_t *blk, float *d, float *dm) {
    block_q5_K *y = (block_q5_K *)blk;
    if (sw) q_k4_weighted_superscales(scales, mins, sw, true, &y->d, &y->dmin, y->scales);
    else q_k4_ref_superscales(scales, mins, &y->d, &y->dmin, y->scales);
    k4_effective(blk, d, dm);
}

static void q2_K_head(const float *scales, const float *mins, const float *sw, uint8_t *blk, float *d, float *dm) {
    block_q2_K *y = (block_q2_K *)blk;
    if (sw) q_q2_K_weighted_scales(scales, mins, sw, y);
    else q_q2_K_ref_scales(scales, mins, y);
    for (int j = 0; j < 16; j++) {
        d[j] = h2f(y->d) * (y->scales[j] & 0xF);
        dm[j] = h2f(y->dmin) * (y->scales[j] >> 4);
    }
}

static void q4_K_pack(const uint8_t *L, uint8_t *blk) { q_pack_q4_K(L, ((block_q4_K *)blk)->qs); }
static void q5_K_pack(const uint8_t *L, uint8_t *blk) {
    block_q5_K *y = (block_q5_K *)blk;
    q_pack_q5_K(L, y->qh, y->qs);
}
static void q2_K_pack(const uint8_t *L, uint8_t *blk) { q_pack_2bit(L, ((block_q2_K *)blk)->qs); }

static const kq_type KQ_Q4_K = {32, 15, KV * LANES / 8, sizeof(block_q4_K),
                                {32, 15, -1.f, 0.1f, 20, false, false}, {32, 15, -0.9f, 0.05f, 36, false, true},
                                false, 2.0f, q4_K_head, q4_K_pack};
static const kq_type KQ_Q5_K = {32, 31, KV * LANES / 8, sizeof(block_q5_K),
                                {32, 31, -0.5f, 0.1f, 15, false, false}, {32, 31, -0.9f, 0.05f, 36, false, true},
                                false, 2.0f, q5_K_head, q5_K_pack};
static const kq_type KQ_Q2_K = {16, 3, KV * LANES / 16, sizeof(block_q2_K),
                                {16, 3, -0.5f, 0.1f, 15, true, false}, {16, 3, -0.9f, 0.05f, 36, false, true},
                                true, 1.0f, q2_K_head, q2_K_pack};

void QL_NAME(q_quantize_q4_K)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    kq_rows(&KQ_Q4_K, x, y, nrows, n_per_row, qw);
}

void QL_NAME(q_quantize_q5_K)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    kq_rows(&KQ_Q5_K, x, y, nrows, n_per_row, qw);
}

void QL_NAME(q_quantize_q2_K)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    kq_rows(&KQ_Q2_K, x, y, nrows, n_per_row, qw);
}

/* ---- Q3_K: 16 groups of 16 per super-block, KV*LANES groups (Q3_SB super-blocks) per
 * step. Reference: make_q3_quants with its refinement passes; weighted: make_qx_quants. ---- */

#define Q3_SB (KV * LANES / 16)

/* make_q3_quants(16, 4, ..., do_rmse) lane-wise: levels (l + 4, 0 for an all-zero group) into
 * Lt, scales returned. A refinement pass that changes nothing in a lane leaves it as it was,
 * so lanes that ggml would have stopped can run on until every lane is done. */
static void lanes_q3(const vf (*xt)[KV], vf (*Lt)[KV], vf *scale) {
    const int n = 16, nmax = 4;
    vf amax[KV], max[KV], sumlx[KV], suml2[KV], wx[16][KV], w[16][KV];
    vm zero[KV];
    for (int v = 0; v < KV; v++) amax[v] = max[v] = v_set1(0);
    for (int i = 0; i < n; i++) {
        for (int v = 0; v < KV; v++) {
            vf ax = v_abs(xt[i][v]);
            vm m = v_gt(ax, amax[v]);
            amax[v] = v_blend(m, ax, amax[v]);
            max[v] = v_blend(m, xt[i][v], max[v]);
            w[i][v] = v_mul(xt[i][v], xt[i][v]);
            wx[i][v] = v_mul(w[i][v], xt[i][v]);
        }
    }
    for (int v = 0; v < KV; v++) {
        zero[v] = v_lt(amax[v], v_set1(GROUP_MAX_EPS));
        vf iscale = v_div(v_set1((float)-nmax), max[v]);
        sumlx[v] = suml2[v] = v_set1(0);
        for (int i = 0; i < n; i++) {
            vf l = v_level(iscale, xt[i][v], -nmax, nmax - 1);
            Lt[i][v] = l;
            sumlx[v] = v_add(sumlx[v], v_mul(wx[i][v], l));
            suml2[v] = v_add(suml2[v], v_mul(v_mul(w[i][v], l), l));
        }
    }
    for (int itry = 0; itry < 5; ++itry) {
        bool changed = false;
        for (int i = 0; i < n; i++) {
            for (int v = 0; v < KV; v++) {
                const vf L = Lt[i][v];
                vf slx = v_sub(sumlx[v], v_mul(wx[i][v], L));
                vm go = v_gt(slx, v_set1(0));
                vf sl2 = v_sub(suml2[v], v_mul(v_mul(w[i][v], L), L));
                vf nl = vi_to_f(vi_clamp(v_nearest(v_div(v_mul(xt[i][v], sl2), slx)), -nmax, nmax - 1));
                go = m_and(go, v_ne(nl, L));
                vf slx2 = v_add(slx, v_mul(wx[i][v], nl));
                vf sl22 = v_add(sl2, v_mul(v_mul(w[i][v], nl), nl));
                go = m_and(go, m_and(v_gt(sl22, v_set1(0)),
                                     v_gt(v_mul(v_mul(slx2, slx2), suml2[v]), v_mul(v_mul(sumlx[v], sumlx[v]), sl22))));
                if (!m_any(go)) continue;
                changed = true;
                Lt[i][v] = v_blend(go, nl, L);
                sumlx[v] = v_blend(go, slx2, sumlx[v]);
                suml2[v] = v_blend(go, sl22, suml2[v]);
            }
        }
        if (!changed) break;
    }
    for (int v = 0; v < KV; v++) {
        for (int i = 0; i < n; i++) Lt[i][v] = v_blend(zero[v], v_set1(0), v_add(Lt[i][v], v_set1((float)nmax)));
        vf s = v_blend(v_gt(suml2[v], v_set1(0)), v_div(sumlx[v], suml2[v]), v_set1(0));
        scale[v] = v_blend(zero[v], v_set1(0), s);
    }
}

void QL_NAME(q_quantize_q3_K)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q3_K *y = vy;
    const int64_t nb = n_per_row / QK_K, total = nrows * nb;
    float xp[Q3_SB * QK_K], w[Q3_SB * QK_K], scales[KV * LANES], sw[KV * LANES], d[KV * LANES];
    block_q3_K scratch[Q3_SB];
    for (int64_t k = 0; k < total; k += Q3_SB) {
        const int64_t cnt = total - k < Q3_SB ? total - k : Q3_SB;
        const float *xs = x + QK_K * k;
        block_q3_K *yb = y + k;
        if (cnt < Q3_SB) {
            memset(xp, 0, sizeof xp);
            memcpy(xp, xs, sizeof(float) * QK_K * (size_t)cnt);
            xs = xp;
            yb = scratch;
        }
        vf xt[16][KV], Lt[16][KV], scale[KV];
        transpose_kv(xs, 16, xt);
        if (qw) {
            memset(w, 0, sizeof w);
            for (int64_t sb = 0; sb < cnt; sb++) {
                const float *xb = xs + QK_K * sb, *qb = qw + QK_K * ((k + sb) % nb);
                float sumx2 = 0;
                for (int j = 0; j < QK_K; ++j) sumx2 += xb[j] * xb[j];
                vf sigma2 = v_set1(2 * sumx2 / QK_K);
                for (int j = 0; j < QK_K; j += LANES) {
                    vf xv = v_load(xb + j);
                    v_store(w + QK_K * sb + j, v_mul(v_load(qb + j), v_sqrt(v_add(sigma2, v_mul(xv, xv)))));
                }
            }
            vf wt[16][KV];
            transpose_kv(w, 16, wt);
            for (int v = 0; v < KV; v++) {
                vf x1[16], w1[16], L1[16], s = v_set1(0);
                for (int i = 0; i < 16; i++) x1[i] = xt[i][v], w1[i] = wt[i][v], s = v_add(s, wt[i][v]);
                v_store(sw + LANES * v, s);
                scale[v] = lanes_qx(16, 4, x1, w1, L1);
                for (int i = 0; i < 16; i++) Lt[i][v] = L1[i];
            }
        } else {
            lanes_q3((const vf(*)[KV])xt, Lt, scale);
        }
        for (int v = 0; v < KV; v++) v_store(scales + LANES * v, scale[v]);
        for (int sb = 0; sb < Q3_SB; sb++) {
            if (qw) q_q3_K_weighted_scales(scales + 16 * sb, sw + 16 * sb, &yb[sb]);
            else q_q3_K_ref_scales(scales + 16 * sb, &yb[sb]);
            for (int j = 0; j < 16; j++) d[16 * sb + j] = h2f(yb[sb].d) * q_q3_K_scale(yb[sb].scales, j);
        }
        int8_t L[Q3_SB * QK_K];
        for (int v = 0; v < KV; v++) {
            const vf dv = v_load(d + LANES * v);
            const vm live = v_ne(dv, v_set1(0));
            int32_t Li[16 * LANES];
            for (int i = 0; i < 16; i++) {
                vf l = vi_to_f(vi_add(vi_clamp(v_nearest(v_div(xt[i][v], dv)), -4, 3), vi_set1(4)));
                vi_store(Li + i * LANES, vi_from_f(v_blend(live, l, Lt[i][v])));
            }
            for (int g = 0; g < LANES; g++)
                for (int i = 0; i < 16; i++) L[16 * (LANES * v + g) + i] = (int8_t)Li[i * LANES + g];
        }
        for (int64_t sb = 0; sb < cnt; sb++) q_q3_K_pack(L + QK_K * sb, &yb[sb]);
        if (yb == scratch) memcpy(y + k, scratch, sizeof(block_q3_K) * (size_t)cnt);
    }
}

/* ---- Q6_K: a super-block is 16 groups of 16, Q6_STEPS vectors of lanes ---- */

#define Q6_STEPS (16 / LANES)

void QL_NAME(q_quantize_q6_K)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q6_K *y = vy;
    const int64_t nb = n_per_row / QK_K;
    for (int64_t ib = 0; ib < nrows * nb; ib++) {
        const float *xs = x + QK_K * ib, *qs = qw ? qw + QK_K * (ib % nb) : NULL;
        vf xt[Q6_STEPS][16], Lt[Q6_STEPS][16], wt[16];
        float scales[16], d[16];
        for (int s = 0; s < Q6_STEPS; s++) {
            transpose_in(xs + 16 * LANES * s, 16, xt[s]);
            if (qs) transpose_in(qs + 16 * LANES * s, 16, wt);
            else for (int i = 0; i < 16; i++) wt[i] = v_mul(xt[s][i], xt[s][i]);
            v_store(scales + LANES * s, lanes_qx(16, 32, xt[s], wt, Lt[s]));
        }
        if (!q_q6_K_superscale(scales, &y[ib])) continue;
        for (int j = 0; j < 16; j++) d[j] = h2f(y[ib].d) * y[ib].scales[j];
        int8_t L[QK_K];
        for (int s = 0; s < Q6_STEPS; s++) {
            const vf dv = v_load(d + LANES * s);
            const vm live = v_ne(dv, v_set1(0));
            for (int i = 0; i < 16; i++) {
                vf l = vi_to_f(vi_add(vi_clamp(v_nearest(v_div(xt[s][i], dv)), -32, 31), vi_set1(32)));
                Lt[s][i] = v_blend(live, l, Lt[s][i]);
            }
            int32_t Li[16 * LANES];
            levels_out(Lt[s], 16, Li);
            for (int g = 0; g < LANES; g++)
                for (int i = 0; i < 16; i++) L[16 * (LANES * s + g) + i] = (int8_t)Li[i * LANES + g];
        }
        q_pack_q6_K(L, &y[ib]);
    }
}

/* ---- Q4_0, Q4_1, Q5_0, Q5_1 with importance weights: blocks of 32 with weights
 * qw * sqrt(sigma2 + x^2), sigma2 the mean square of the block's row; the symmetric types
 * search with make_qx_quants, the ones with a min with make_qkx3_quants. KV*LANES blocks per
 * step, across row ends. ---- */

static void legacy_weighted_rows(sm_type t, const float *x, void *vy, int64_t nrows, int64_t n_per_row,
                                 const float *qw) {
    enum { S = KV * LANES };
    const bool with_min = t == SM_TYPE_Q4_1 || t == SM_TYPE_Q5_1;
    const int nmax = t == SM_TYPE_Q4_0 ? 8 : t == SM_TYPE_Q5_0 ? 16 : t == SM_TYPE_Q4_1 ? 15 : 31;
    const kx_params kx = {32, nmax, -0.9f, 0.05f, 36, false, true};
    const int64_t nb = n_per_row / QK32, total = nrows * nb;
    const size_t block_bytes = sm_type_get(t)->block_bytes;
    float xp[QK32 * S], w[QK32 * S], d[S], m[S];
    int64_t cur_row = -1;
    float sigma2 = 0;
    for (int64_t k = 0; k < total; k += S) {
        const int64_t cnt = total - k < S ? total - k : S;
        const float *xs = x + QK32 * k;
        if (cnt < S) {
            memset(xp, 0, sizeof xp);
            memcpy(xp, xs, sizeof(float) * QK32 * (size_t)cnt);
            xs = xp;
        }
        memset(w, 0, sizeof w);
        for (int64_t g = 0; g < cnt; g++) {
            const int64_t r = (k + g) / nb;
            if (r != cur_row) {
                cur_row = r;
                sigma2 = q_row_sigma2(x + r * n_per_row, n_per_row);
            }
            const float *qb = qw + QK32 * ((k + g) % nb);
            for (int j = 0; j < QK32; j += LANES) {
                vf xv = v_load(xs + QK32 * g + j);
                v_store(w + QK32 * g + j, v_mul(v_load(qb + j), v_sqrt(v_add(v_set1(sigma2), v_mul(xv, xv)))));
            }
        }
        vf xt[QK32][KV], wt[QK32][KV], Lt[QK32][KV], scale[KV], the_min[KV];
        transpose_kv(xs, QK32, xt);
        transpose_kv(w, QK32, wt);
        if (with_min) {
            lanes_qkx(&kx, (const vf(*)[KV])xt, (const vf(*)[KV])wt, Lt, scale, the_min);
            for (int v = 0; v < KV; v++) v_store(m + LANES * v, v_neg(the_min[v]));
        } else {
            for (int v = 0; v < KV; v++) {
                vf x1[QK32], w1[QK32], L1[QK32];
                for (int i = 0; i < QK32; i++) x1[i] = xt[i][v], w1[i] = wt[i][v];
                scale[v] = lanes_qx(QK32, nmax, x1, w1, L1);
                for (int i = 0; i < QK32; i++) Lt[i][v] = L1[i];
            }
        }
        int32_t Li[QK32 * S];
        for (int v = 0; v < KV; v++) {
            v_store(d + LANES * v, scale[v]);
            for (int i = 0; i < QK32; i++) vi_store(Li + (KV * i + v) * LANES, vi_from_f(Lt[i][v]));
        }
        for (int64_t g = 0; g < cnt; g++) {
            uint8_t L[QK32], *blk = (uint8_t *)vy + (size_t)(k + g) * block_bytes;
            for (int i = 0; i < QK32; i++) L[i] = (uint8_t)Li[(KV * i + g / LANES) * LANES + g % LANES];
            const uint16_t dh = f2h(d[g]);
            switch (t) {
            case SM_TYPE_Q4_0: {
                block_q4_0 *y = (block_q4_0 *)blk;
                y->d = dh;
                for (int j = 0; j < 16; ++j) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
                break;
            }
            case SM_TYPE_Q4_1: {
                block_q4_1 *y = (block_q4_1 *)blk;
                y->d = dh;
                y->m = f2h(m[g]);
                for (int j = 0; j < 16; ++j) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
                break;
            }
            case SM_TYPE_Q5_0: {
                block_q5_0 *y = (block_q5_0 *)blk;
                y->d = dh;
                q_pack_q5(L, y->qs, y->qh);
                break;
            }
            default: {
                block_q5_1 *y = (block_q5_1 *)blk;
                y->d = dh;
                y->m = f2h(m[g]);
                q_pack_q5(L, y->qs, y->qh);
                break;
            }
            }
        }
    }
}

/* Without importance weights these types are cheap: the scalar reference code. */
static void legacy_rows(sm_type t, q_row_fn scalar, const float *x, void *vy, int64_t nrows, int64_t n_per_row,
                        const float *qw) {
    if (qw) {
        legacy_weighted_rows(t, x, vy, nrows, n_per_row, qw);
        return;
    }
    const size_t row_bytes = (size_t)sm_type_row_bytes(t, n_per_row);
    for (int64_t r = 0; r < nrows; r++) scalar(x + r * n_per_row, (uint8_t *)vy + (size_t)r * row_bytes, n_per_row, NULL);
}

void QL_NAME(q_quantize_q4_1)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    legacy_rows(SM_TYPE_Q4_1, q_quantize_q4_1, x, y, nrows, n_per_row, qw);
}

void QL_NAME(q_quantize_q5_0)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    legacy_rows(SM_TYPE_Q5_0, q_quantize_q5_0, x, y, nrows, n_per_row, qw);
}

void QL_NAME(q_quantize_q5_1)(const float *x, void *y, int64_t nrows, int64_t n_per_row, const float *qw) {
    legacy_rows(SM_TYPE_Q5_1, q_quantize_q5_1, x, y, nrows, n_per_row, qw);
}

/* ---- Q8_0 and Q4_0 without importance weights: one block of 32 at a time ---- */

/* max |x| over a block (max is exact in any order) */
static inline vf block_abs_max(const float *x) {
    vf m = v_abs(v_load(x));
    for (int k = LANES; k < QK32; k += LANES) m = v_max(m, v_abs(v_load(x + k)));
    return m;
}

/* roundf (half away from zero), exactly: trunc, then step away if the fraction is >= 0.5 */
static inline vf v_roundf(vf v) {
    vf t = v_trunc(v);
    return v_blend(v_ge(v_abs(v_sub(v, t)), v_set1(0.5f)), v_add(t, v_copysign1(v)), t);
}

void QL_NAME(q_quantize_q8_0)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    (void)qw; /* ggml's Q8_0 ignores importance weights */
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        const float amax = v_hmax(block_abs_max(x));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int k = 0; k < QK32; k += LANES)
            vi_store_i8(y[i].qs + k, vi_from_f(v_roundf(v_mul(v_load(x + k), v_set1(id)))));
    }
}

/* (int8_t)(x*id + 8.5f) capped at 15, as ggml computes it (cvtt, then the low byte) */
static inline vi q4_0_level(const float *x, vf id) {
    vi t = vi_sext8(vi_from_f(v_add(v_mul(v_load(x), id), v_set1(8.5f))));
    return vi_min(t, vi_set1(15));
}

void QL_NAME(q_quantize_q4_0)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q4_0 *y = vy;
    if (qw) {
        legacy_weighted_rows(SM_TYPE_Q4_0, x, vy, nrows, n_per_row, qw);
        return;
    }
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        const float amax = v_hmax(block_abs_max(x));
        float max = 0.0f; /* the first value of largest magnitude, as ggml's strict scan finds it */
        if (amax > 0) {
            for (int k = 0; k < QK32; k += LANES) {
                int at = m_first(v_eq(v_abs(v_load(x + k)), v_set1(amax)));
                if (at >= 0) { max = x[k + at]; break; }
            }
        }
        const float d = max / -8;
        const vf id = v_set1(d ? 1.0f / d : 0.0f);
        y[i].d = f2h(d);
        for (int k = 0; k < QK32 / 2; k += LANES)
            vi_store_i8((int8_t *)y[i].qs + k, vi_or(q4_0_level(x + k, id), vi_shl4(q4_0_level(x + QK32 / 2 + k, id))));
    }
}

/* ---- IQ4_NL and IQ4_XS: groups of 32 on the 16 non-linear levels ---- */

/* ggml's best_index_int8 over the 16 levels, lane-wise. Its binary search ends on the largest
 * k with level[k] <= x; the 4-step search below finds the same k, then the nearer of k and
 * k+1 with ggml's tie rule and its answers for x outside the table (and for NaN: 15). */
static inline vi iq4_index(const float *levels, vf x) {
    vi pos = vi_set1(0);
    for (int step = 8; step >= 1; step /= 2) {
        vi cand = vi_add(pos, vi_set1(step));
        pos = vi_blend(v_le(v_lookup16(levels, cand), x), cand, pos);
    }
    vi up = vi_min(vi_add(pos, vi_set1(1)), vi_set1(15));
    vm lower = v_lt(v_sub(x, v_lookup16(levels, pos)), v_sub(v_lookup16(levels, up), x));
    vi r = vi_blend(lower, pos, up);
    r = vi_blend(v_le(x, v_set1(levels[0])), vi_set1(0), r);
    return vi_blend(m_or(v_ge(x, v_set1(levels[15])), v_ne(x, x)), vi_set1(15), r);
}

/* The best scale of LANES groups (ggml's quantize_row_iq4_nl_impl search with ntry 7); 0 for
 * an all-zero group. The 15 candidates are independent and run two at a time. */
static vf lanes_iq4(const float *levels, const vf *xt, const vf *wt) {
    vf amax = v_set1(0), max = v_set1(0);
    for (int i = 0; i < 32; i++) {
        vf ax = v_abs(xt[i]);
        vm m = v_gt(ax, amax);
        amax = v_blend(m, ax, amax);
        max = v_blend(m, xt[i], max);
    }
    const vm zero = v_lt(amax, v_set1(GROUP_MAX_EPS));
    vf id = v_div(v_set1(1), v_div(v_neg(max), v_set1(levels[0])));
    vf sumqx = v_set1(0), sumq2 = v_set1(0);
    for (int i = 0; i < 32; i++) {
        vf q = v_lookup16(levels, iq4_index(levels, v_mul(id, xt[i])));
        vf wq = v_mul(wt[i], q);
        sumqx = v_add(sumqx, v_mul(wq, xt[i]));
        sumq2 = v_add(sumq2, v_mul(wq, q));
    }
    vf d = v_blend(v_gt(sumq2, v_set1(0)), v_div(sumqx, sumq2), v_set1(0));
    vf best = v_mul(d, sumqx);
    for (int itry = -Q_IQ4_NTRY; itry <= Q_IQ4_NTRY; itry += 2) {
        const bool two = itry + 1 <= Q_IQ4_NTRY;
        vf ida = v_div(v_set1((float)(itry + (int)levels[0])), max);
        vf idb = v_div(v_set1((float)(itry + (two ? 1 : 0) + (int)levels[0])), max);
        vf sxa = v_set1(0), s2a = v_set1(0), sxb = v_set1(0), s2b = v_set1(0);
        for (int i = 0; i < 32; i++) {
            vf qa = v_lookup16(levels, iq4_index(levels, v_mul(ida, xt[i])));
            vf qb = v_lookup16(levels, iq4_index(levels, v_mul(idb, xt[i])));
            vf wqa = v_mul(wt[i], qa), wqb = v_mul(wt[i], qb);
            sxa = v_add(sxa, v_mul(wqa, xt[i]));
            sxb = v_add(sxb, v_mul(wqb, xt[i]));
            s2a = v_add(s2a, v_mul(wqa, qa));
            s2b = v_add(s2b, v_mul(wqb, qb));
        }
        for (int c = 0; c < (two ? 2 : 1); c++) {
            vf sx = c ? sxb : sxa, s2 = c ? s2b : s2a;
            vm take = m_and(v_gt(s2, v_set1(0)), v_gt(v_mul(sx, sx), v_mul(best, s2)));
            vf nd = v_div(sx, s2);
            d = v_blend(take, nd, d);
            best = v_blend(take, v_mul(nd, sx), best);
        }
    }
    return v_blend(zero, v_set1(0), d);
}

/* Levels of LANES groups for inverse scales idl (per lane), into L in natural order. */
static void iq4_levels(const float *levels, const vf *xt, vf idl, uint8_t *L) {
    int32_t Li[32 * LANES];
    for (int i = 0; i < 32; i++) vi_store(Li + i * LANES, iq4_index(levels, v_mul(idl, xt[i])));
    for (int g = 0; g < LANES; g++)
        for (int i = 0; i < 32; i++) L[32 * g + i] = (uint8_t)Li[i * LANES + g];
}

/* Weights of LANES groups: imatrix * sqrt(sigma2 + x^2), or x^2. */
static void iq4_weights_t(const vf *xt, const float *qw, vf sigma2, vf *wt) {
    if (qw) {
        transpose_in(qw, 32, wt);
        for (int i = 0; i < 32; i++) wt[i] = v_mul(wt[i], v_sqrt(v_add(sigma2, v_mul(xt[i], xt[i]))));
    } else {
        for (int i = 0; i < 32; i++) wt[i] = v_mul(xt[i], xt[i]);
    }
}

static void iq4_levels_f(float *levels) {
    for (int k = 0; k < 16; k++) levels[k] = sm_iq4nl_values[k];
}

void QL_NAME(q_quantize_iq4_nl)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_iq4_nl *y = vy;
    const int64_t nb = n_per_row / 32, total = nrows * nb;
    float levels[16], xp[32 * LANES], wp[32 * LANES], d[LANES];
    uint8_t L[32 * LANES];
    iq4_levels_f(levels);
    for (int64_t k = 0; k < total; k += LANES) {
        const int64_t cnt = total - k < LANES ? total - k : LANES;
        const float *xs = x + 32 * k;
        if (cnt < LANES) {
            memset(xp, 0, sizeof xp);
            memcpy(xp, xs, sizeof(float) * 32 * (size_t)cnt);
            xs = xp;
        }
        if (qw) {
            memset(wp, 0, sizeof wp);
            for (int64_t g = 0; g < cnt; g++) memcpy(wp + 32 * g, qw + 32 * ((k + g) % nb), sizeof(float) * 32);
        }
        vf xt[32], wt[32], sigma2 = v_set1(0);
        transpose_in(xs, 32, xt);
        for (int i = 0; i < 32; i++) sigma2 = v_add(sigma2, v_mul(xt[i], xt[i]));
        sigma2 = v_mul(sigma2, v_set1(2.f / 32));
        iq4_weights_t(xt, qw ? wp : NULL, sigma2, wt);
        vf dv = lanes_iq4(levels, xt, wt);
        v_store(d, dv);
        iq4_levels(levels, xt, v_blend(v_ne(dv, v_set1(0)), v_div(v_set1(1), dv), v_set1(0)), L);
        for (int64_t g = 0; g < cnt; g++) {
            y[k + g].d = f2h(d[g]);
            q_pack_nibbles(L + 32 * g, y[k + g].qs, 32);
        }
    }
}

/* IQ4_XS: a super-block is 8 groups, LANES/8 super-blocks per step */
#define XS_SB (LANES / 8)

void QL_NAME(q_quantize_iq4_xs)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_iq4_xs *y = vy;
    const int64_t nb = n_per_row / QK_K, total = nrows * nb;
    float levels[16], xp[QK_K * XS_SB], wp[QK_K * XS_SB], s2[LANES], scales[LANES], idl[LANES];
    uint8_t L[QK_K * XS_SB];
    block_iq4_xs scratch[XS_SB];
    iq4_levels_f(levels);
    for (int64_t k = 0; k < total; k += XS_SB) {
        const int64_t cnt = total - k < XS_SB ? total - k : XS_SB;
        const float *xs = x + QK_K * k;
        block_iq4_xs *yb = y + k;
        if (cnt < XS_SB) {
            memset(xp, 0, sizeof xp);
            memcpy(xp, xs, sizeof(float) * QK_K * (size_t)cnt);
            xs = xp;
            yb = scratch;
        }
        if (qw) {
            memset(wp, 0, sizeof wp);
            for (int64_t sb = 0; sb < cnt; sb++) memcpy(wp + QK_K * sb, qw + QK_K * ((k + sb) % nb), sizeof(float) * QK_K);
        }
        for (int sb = 0; sb < XS_SB; sb++) {
            float sigma2 = 0;
            for (int j = 0; j < QK_K; ++j) sigma2 += xs[QK_K * sb + j] * xs[QK_K * sb + j];
            sigma2 *= 2.f / QK_K;
            for (int g = 0; g < 8; g++) s2[8 * sb + g] = sigma2;
        }
        vf xt[32], wt[32];
        transpose_in(xs, 32, xt);
        iq4_weights_t(xt, qw ? wp : NULL, v_load(s2), wt);
        v_store(scales, lanes_iq4(levels, xt, wt));
        for (int sb = 0; sb < XS_SB; sb++) q_iq4_xs_scales(scales + 8 * sb, &yb[sb], idl + 8 * sb);
        iq4_levels(levels, xt, v_load(idl), L);
        for (int64_t sb = 0; sb < cnt; sb++) q_pack_nibbles(L + QK_K * sb, yb[sb].qs, QK_K);
        if (yb == scratch) memcpy(y + k, scratch, sizeof(block_iq4_xs) * (size_t)cnt);
    }
}

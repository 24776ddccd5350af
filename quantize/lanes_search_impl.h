/* lanes_search_impl.h - (internal) the lane-parallel scale searches of the SIMD codecs,
 * written once over a small vector vocabulary and compiled per instruction set:
 * quantize/lanes_avx2.c (8 lanes) and quantize/lanes_avx512.c (16 lanes) define the vocabulary
 * (vf: LANES floats, vi: LANES int32, vm: a lane mask) and QL_NAME(), then include this file,
 * lanes_kquants_impl.h and lanes_legacy_impl.h.
 *
 * Why the bytes stay identical to the scalar code (and so to ggml): ggml's searches are
 * sequential per group of 16 or 32 values, but the groups are independent. Here each lane
 * carries one group and runs exactly the scalar sequence of float operations (same order, no
 * reassociation, no contraction), with data-dependent branches turned into lane masks.
 * Where a search's candidate scales are independent of each other (make_qx_quants, the IQ4
 * search) they are evaluated two at a time for instruction-level parallelism and accepted
 * strictly in ggml's order; where they are not (make_qkx2/3_quants: each candidate starts
 * from the min the previous accepted one left), KV independent vectors of groups are searched
 * together instead. Everything that is not per group (super-block scales, f16 rounding,
 * packing) is the scalar code. */

#include <math.h>

#define GMAX 32 /* largest group */

/* ---- helpers over the vocabulary ---- */

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

/* Gathers KV*LANES groups of n values (group g at src + g*n): xt[i][v] lane k = group
 * v*LANES + k's value i. */
static void transpose_kv(const float *src, int n, vf (*xt)[KV]) {
    for (int v = 0; v < KV; v++) {
        vf t[GMAX];
        transpose_in(src + (size_t)v * LANES * n, n, t);
        for (int i = 0; i < n; i++) xt[i][v] = t[i];
    }
}

/* ---- make_q3_quants(16, 4, ..., do_rmse=true) ---- */

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

/* ---- IQ4: the nearest of the 16 non-linear levels, and the group scale search ---- */

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

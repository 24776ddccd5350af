/* lanes_legacy_impl.h - (internal) the SIMD 32-block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
 * and IQ4_NL, and IQ4_XS; included by quantize/lanes_avx2.c and quantize/lanes_avx512.c after
 * lanes_search_impl.h. */

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
                q_pack_nibbles(L, y->qs, QK32);
                break;
            }
            case SM_TYPE_Q4_1: {
                block_q4_1 *y = (block_q4_1 *)blk;
                y->d = dh;
                y->m = f2h(m[g]);
                q_pack_nibbles(L, y->qs, QK32);
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

/* ---- the legacy types without importance weights: one block of 32 at a time ---- */

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

/* The first value of largest magnitude (0 if all are 0), as ggml's strict scan finds it. */
static inline float block_signed_absmax(const float *x) {
    const float amax = v_hmax(block_abs_max(x));
    if (amax > 0) {
        for (int k = 0; k < QK32; k += LANES) {
            int at = m_first(v_eq(v_abs(v_load(x + k)), v_set1(amax)));
            if (at >= 0) return x[k + at];
        }
    }
    return 0.0f;
}

/* ggml's min and max scans (strict, from +-FLT_MAX): the values are order-independent, the
 * sign of a zero is the first one's. */
static inline void block_min_max(const float *x, float *min, float *max) {
    vf lo = v_load(x), hi = lo;
    for (int k = LANES; k < QK32; k += LANES) {
        vf v = v_load(x + k);
        lo = v_blend(v_lt(v, lo), v, lo);
        hi = v_max(hi, v);
    }
    const float mn = v_hmin(lo), mx = v_hmax(hi);
    *min = mn < FLT_MAX ? mn : FLT_MAX;
    *max = mx > -FLT_MAX ? mx : -FLT_MAX;
    if (mn == 0 || mx == 0) {
        bool got_min = mn != 0, got_max = mx != 0;
        for (int j = 0; j < QK32 && !(got_min && got_max); j++) {
            if (!got_min && x[j] == mn) *min = x[j], got_min = true;
            if (!got_max && x[j] == mx) *max = x[j], got_max = true;
        }
    }
}

/* (int8_t)(v) capped at hi, as ggml computes it (cvtt, then the low byte) */
static inline vi level_i8(vf v, int hi) { return vi_min(vi_sext8(vi_from_f(v)), vi_set1(hi)); }

void QL_NAME(q_quantize_q4_0)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q4_0 *y = vy;
    if (qw) {
        legacy_weighted_rows(SM_TYPE_Q4_0, x, vy, nrows, n_per_row, qw);
        return;
    }
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        const float d = block_signed_absmax(x) / -8;
        const vf id = v_set1(d ? 1.0f / d : 0.0f), off = v_set1(8.5f);
        y[i].d = f2h(d);
        for (int k = 0; k < QK32 / 2; k += LANES) {
            vi lo = level_i8(v_add(v_mul(v_load(x + k), id), off), 15);
            vi hi = level_i8(v_add(v_mul(v_load(x + QK32 / 2 + k), id), off), 15);
            vi_store_i8((int8_t *)y[i].qs + k, vi_or(lo, vi_shl4(hi)));
        }
    }
}

void QL_NAME(q_quantize_q4_1)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q4_1 *y = vy;
    if (qw) {
        legacy_weighted_rows(SM_TYPE_Q4_1, x, vy, nrows, n_per_row, qw);
        return;
    }
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        float min, max;
        block_min_max(x, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const vf id = v_set1(d ? 1.0f / d : 0.0f), vmin = v_set1(min), half = v_set1(0.5f);
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int k = 0; k < QK32 / 2; k += LANES) {
            vi lo = level_i8(v_add(v_mul(v_sub(v_load(x + k), vmin), id), half), 15);
            vi hi = level_i8(v_add(v_mul(v_sub(v_load(x + QK32 / 2 + k), vmin), id), half), 15);
            vi_store_i8((int8_t *)y[i].qs + k, vi_or(lo, vi_shl4(hi)));
        }
    }
}

void QL_NAME(q_quantize_q5_0)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q5_0 *y = vy;
    if (qw) {
        legacy_weighted_rows(SM_TYPE_Q5_0, x, vy, nrows, n_per_row, qw);
        return;
    }
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        const float d = block_signed_absmax(x) / -16;
        const vf id = v_set1(d ? 1.0f / d : 0.0f), off = v_set1(16.5f);
        y[i].d = f2h(d);
        int8_t L[QK32];
        for (int k = 0; k < QK32; k += LANES) vi_store_i8(L + k, level_i8(v_add(v_mul(v_load(x + k), id), off), 31));
        q_pack_q5((const uint8_t *)L, y[i].qs, y[i].qh);
    }
}

void QL_NAME(q_quantize_q5_1)(const float *x, void *vy, int64_t nrows, int64_t n_per_row, const float *qw) {
    block_q5_1 *y = vy;
    if (qw) {
        legacy_weighted_rows(SM_TYPE_Q5_1, x, vy, nrows, n_per_row, qw);
        return;
    }
    for (int64_t i = 0; i < nrows * n_per_row / QK32; i++, x += QK32) {
        float min, max;
        block_min_max(x, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const vf id = v_set1(d ? 1.0f / d : 0.0f), vmin = v_set1(min), half = v_set1(0.5f);
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        int8_t L[QK32]; /* (uint8_t)(v): cvtt, then the low byte */
        for (int k = 0; k < QK32; k += LANES)
            vi_store_i8(L + k, vi_from_f(v_add(v_mul(v_sub(v_load(x + k), vmin), id), half)));
        q_pack_q5((const uint8_t *)L, y[i].qs, y[i].qh);
    }
}

/* ---- IQ4_NL and IQ4_XS: groups of 32 on the 16 non-linear levels ---- */

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

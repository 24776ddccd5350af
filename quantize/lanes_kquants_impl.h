/* lanes_kquants_impl.h - (internal) the SIMD k-quants Q2_K .. Q6_K: super-blocks gathered
 * KV*LANES groups at a time into lanes for the searches of lanes_search_impl.h; included by
 * quantize/lanes_avx2.c and quantize/lanes_avx512.c after it. Super-block scales and
 * packing are the scalar code's. */

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

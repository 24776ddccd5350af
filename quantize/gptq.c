/* gptq.c - GPTQ (Frantar et al. 2022) on one linear layer: the prepared inverse Hessian, the
 * lazy-batched column loop, the result (HF codes/scales/zeros/g_idx or packed GGUF blocks and
 * the dequantized weight) and the loss report.
 *
 * The algorithm, per row of W (rows are independent; columns in act-order if asked):
 *   for each column k: if a group starts at k, fit its parameters on the row's CURRENT
 *   weights of the group's columns; q = nearest grid value of w_k; err = (w_k - q) / U_kk;
 *   w_j -= err * U_kj for j > k,
 * with U the upper Cholesky factor of the dampened H^-1. Lazy batches of block_size columns
 * apply the updates inside the batch row by row (fused axpy) and to the columns beyond it as
 * one GEMM W[:, i2:] -= Err * U[i1:i2, i2:]. A group that starts inside a batch and reaches
 * past its end is fitted on values that include the pending updates of the batch (computed on
 * the spot), so the result equals the column-by-column algorithm exactly; the reference
 * implementation's stale slice is not reproduced. Everything is double precision.
 *
 * With SM_DEVICE_CUDA the working weights live on the GPU between batches: each batch fetches
 * its columns (and those of a group that reaches past it), the host quantizes them as above,
 * and the GPU applies the batch's errors to the columns beyond it (and computes the loss). */
#include "quantize/gptq_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GQ_MAX_COLS (1 << 17)
#define LOSS_ROWS 192 /* rows per GEMM of the loss report */

struct sm_gptq_hinv {
    int64_t n;
    const double *H; /* borrowed, original column order */
    double *U;       /* upper Cholesky factor of the dampened H^-1, permuted order */
    int32_t *perm;   /* permuted position -> original column; NULL without act-order */
    int32_t *iperm;  /* original column -> permuted position */
    uint8_t *dead;   /* original order */
    sm_cuda_gptq *dev; /* SM_DEVICE_CUDA: U (and H for the loss report) on the GPU */
    bool dev_has_h;    /* H was uploaded (prepared without skip_loss) */
};

void sm_gptq_opts_default(sm_gptq_opts *o) {
    memset(o, 0, sizeof *o);
    o->gguf_type = SM_TYPE_INVALID;
    o->bits = 4;
    o->group_size = 128;
    o->sym = true;
    o->damp = 0.01;
    o->block_size = 128;
    o->use_importance = true;
}

void sm_gptq_hinv_free(sm_gptq_hinv *p) {
    if (!p) return;
    free(p->U);
    free(p->perm);
    free(p->iperm);
    free(p->dead);
    sm_cuda_gptq_free(p->dev);
    free(p);
}

typedef struct diag_key {
    double v;
    int32_t i;
} diag_key;

/* Decreasing diagonal; ties keep the column order (a stable argsort). */
static int by_diag_desc(const void *a, const void *b) {
    const diag_key *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int sm_gptq_prepare(const double *H, int64_t n, const sm_gptq_opts *o, sm_gptq_hinv **out) {
    *out = NULL;
    if (n <= 0 || n > GQ_MAX_COLS) return sm_error("gptq: %lld columns is out of range", (long long)n);
    if (!isfinite(o->damp) || o->damp < 0) return sm_error("gptq: dampening %g (must be >= 0)", o->damp);
    if (o->device == SM_DEVICE_CUDA) {
        const char *why = "";
        if (!sm_cuda_available(&why)) return sm_error("gptq: no usable CUDA device (%s)", why);
    }
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(H[i]))
            return sm_error("gptq: Hessian element (%lld, %lld) is not finite", (long long)(i / n), (long long)(i % n));
    for (int64_t i = 0; i < n; i++)
        if (H[i * n + i] < 0)
            return sm_error("gptq: Hessian diagonal element %lld is negative (%g)", (long long)i, H[i * n + i]);

    sm_gptq_hinv *p = calloc(1, sizeof *p);
    double *diag = malloc(sizeof(double) * (size_t)n);
    diag_key *keys = NULL;
    double *a = NULL;
    if (!p || !diag) goto oom;
    p->n = n;
    p->H = H;
    p->dead = malloc((size_t)n);
    p->iperm = malloc(sizeof(int32_t) * (size_t)n);
    a = malloc(sizeof(double) * (size_t)(n * n)); /* factored in place: it becomes U */
    if (!p->dead || !p->iperm || !a) goto oom;

    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        p->dead[i] = H[i * n + i] == 0;
        diag[i] = p->dead[i] ? 1.0 : H[i * n + i];
        mean += diag[i];
    }
    const double damp = o->damp * (mean / (double)n);
    if (o->act_order) {
        keys = malloc(sizeof *keys * (size_t)n);
        p->perm = malloc(sizeof(int32_t) * (size_t)n);
        if (!keys || !p->perm) goto oom;
        for (int64_t i = 0; i < n; i++) keys[i] = (diag_key){diag[i], (int32_t)i};
        qsort(keys, (size_t)n, sizeof *keys, by_diag_desc);
        for (int64_t k = 0; k < n; k++) p->perm[k] = keys[k].i;
        free(keys);
        keys = NULL;
    }
    for (int64_t k = 0; k < n; k++) p->iperm[p->perm ? p->perm[k] : k] = (int32_t)k;

    /* the dampened Hessian in quantization order */
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
    for (int64_t k = 0; k < n; k++) {
        const int64_t pk = p->perm ? p->perm[k] : k;
        for (int64_t l = 0; l < n; l++) a[k * n + l] = H[pk * n + (p->perm ? p->perm[l] : l)];
        a[k * n + k] = diag[pk] + damp;
    }
    free(diag);
    diag = NULL;
    if (gq_inverse_cholesky_upper(a, n, a, o->device)) {
        free(a);
        sm_gptq_hinv_free(p);
        return -1;
    }
    p->U = a;
    if (o->device == SM_DEVICE_CUDA && sm_cuda_gptq_new(n, p->U, o->skip_loss ? NULL : H, &p->dev)) {
        sm_gptq_hinv_free(p);
        return sm_error_ctx("gptq");
    }
    p->dev_has_h = p->dev && !o->skip_loss;
    *out = p;
    return 0;
oom:
    free(diag);
    free(keys);
    free(a);
    sm_gptq_hinv_free(p);
    return sm_error("gptq: out of memory preparing a %lld-column Hessian", (long long)n);
}

/* ---- the column loop ---- */

typedef struct gq_run {
    const sm_gptq_hinv *p;
    gq_grid *g;
    int64_t rows, n, B;
    double *W;          /* working weights, rows x n, quantization order */
    uint8_t *codes;     /* rows x n, quantization order */
    double *E;          /* rows x B: scaled errors of the current batch */
    const float *imp;   /* importance per column (GGUF grids, use_importance), quantization order */
    const bool *imp_ok; /* per group: its importance has a positive sum (else the group is
                           fitted without: ggml's weighted rule would give scale 0) */
    double *seen;       /* rows x n or NULL: each weight as the sweep quantized it (refits) */
    bool fit_seen;      /* fit each group on `seen` (the previous sweep's values) */
    bool feedback;      /* GPTQ (true) or round-to-nearest (false) */
    bool static_groups;
    int64_t bad_row;    /* lowest failing row, INT64_MAX if none */
    char bad_msg[512];
} gq_run;

static void record_failure(gq_run *R, int64_t r) {
#pragma omp critical(gq_run_failure)
    if (r < __atomic_load_n(&R->bad_row, __ATOMIC_RELAXED)) {
        snprintf(R->bad_msg, sizeof R->bad_msg, "%s", sm_last_error());
        __atomic_store_n(&R->bad_row, r, __ATOMIC_RELAXED);
    }
}

/* Rows at or after a failed row are skipped (the lowest failing row is reported). */
static bool row_wanted(gq_run *R, int64_t r) { return r < __atomic_load_n(&R->bad_row, __ATOMIC_RELAXED); }

/* Columns [i1, i2) of row r. x: scratch for one group's values. */
static void row_batch(gq_run *R, const gq_kernels *kr, int64_t r, int64_t i1, int64_t i2, double *x) {
    const int64_t n = R->n;
    const double *U = R->p->U;
    const int32_t *perm = R->p->perm;
    const int group = R->g->group;
    double *w = R->W + r * n, *e = R->E + r * R->B;
    int64_t active = -1;
    for (int64_t k = i1; k < i2; k++) {
        const int64_t c = perm ? perm[k] : k;
        if (R->static_groups) {
            if (c / group != active) gq_grid_activate(R->g, r, active = c / group);
        } else if (k % group == 0) {
            const int len = (int)(n - k < group ? n - k : group);
            /* a refit reads the previous sweep's values of the group before this sweep
               overwrites them (column by column, below) */
            for (int j = 0; j < len && R->fit_seen; j++) x[j] = R->seen[r * n + k + j];
            for (int j = 0; j < len && !R->fit_seen; j++) {
                const int64_t col = k + j;
                double v = w[col];
                if (R->feedback && col >= i2) /* pending updates of this batch */
                    for (int64_t t = i1; t < k; t++) v = fma(-e[t - i1], U[t * n + col], v);
                x[j] = v;
            }
            if (gq_grid_fit(R->g, r, k / group, x, R->imp && R->imp_ok[k / group] ? R->imp + k : NULL, len)) {
                record_failure(R, r);
                return;
            }
        }
        const double wk = w[k];
        if (R->seen) R->seen[r * n + k] = wk;
        uint8_t code;
        const double q = gq_grid_quant(R->g, r, c, wk, &code);
        R->codes[r * n + k] = code;
        w[k] = q;
        if (R->feedback) {
            const double err = (wk - q) / U[k * n + k];
            e[k - i1] = err;
            kr->axpy(i2 - k - 1, -err, U + k * n + k + 1, w + k + 1);
        }
    }
}

/* The columns a batch [i1, i2) reads: its own, and those of a group starting in it. */
static int64_t batch_reach(const gq_run *R, int64_t i1, int64_t i2) {
    const int64_t group = R->g->group, last_start = (i2 - 1) / group * group;
    int64_t hi = i2;
    if (!R->static_groups && last_start >= i1 && last_start + group > hi) hi = last_start + group;
    return hi < R->n ? hi : R->n;
}

static int run_pass(gq_run *R) {
    const int64_t n = R->n, B = R->B;
    const gq_kernels *kr = gq_kernels_get();
    sm_cuda_gptq *dev = R->feedback ? R->p->dev : NULL;
    R->bad_row = INT64_MAX;
    if (dev && sm_cuda_gptq_load(dev, R->W, R->rows)) return sm_error_ctx("gptq");
    for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = n - i1 < B ? n : i1 + B;
        if (dev && i1 > 0 && sm_cuda_gptq_fetch(dev, i1, batch_reach(R, i1, i2), R->W)) return sm_error_ctx("gptq");
        int oom = 0;
#pragma omp parallel num_threads(sm_num_threads())
        {
            double *x = malloc(sizeof(double) * (size_t)R->g->group);
            if (!x) {
#pragma omp atomic write
                oom = 1;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < R->rows; r++)
                if (x && row_wanted(R, r)) row_batch(R, kr, r, i1, i2, x);
            free(x);
        }
        if (oom) return sm_error("gptq: out of memory");
        if (R->bad_row != INT64_MAX) return sm_error("%s", R->bad_msg);
        if (dev) {
            if (sm_cuda_gptq_update(dev, i1, i2, R->E, B)) return sm_error_ctx("gptq");
        } else if (R->feedback && i2 < n) {
            gq_gemm_args g = {.m = R->rows, .n = n - i2, .k = i2 - i1, .sign = -1.0, .a = R->E, .a_rs = B, .a_cs = 1,
                              .b = R->p->U + i1 * n + i2, .b_rs = n, .b_cs = 1, .c = R->W + i2, .ldc = n,
                              .parallel = true};
            if (gq_gemm(&g)) return -1;
        }
    }
    return 0;
}

/* Static groups: every group fitted on the original (dead-zeroed) weights. */
static int fit_static(gq_run *R, const double *w0) {
    const int64_t n = R->n, group = R->g->group, ng = R->g->n_groups;
    const int32_t *iperm = R->p->iperm;
    R->bad_row = INT64_MAX;
    int oom = 0;
#pragma omp parallel num_threads(sm_num_threads())
    {
        double *x = malloc(sizeof(double) * (size_t)group);
        if (!x) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R->rows; r++) {
            for (int64_t gi = 0; x && row_wanted(R, r) && gi < ng; gi++) {
                const int64_t c0 = gi * group, len = n - c0 < group ? n - c0 : group;
                for (int64_t j = 0; j < len; j++) x[j] = w0[r * n + iperm[c0 + j]];
                if (gq_grid_fit(R->g, r, gi, x, NULL, (int)len)) {
                    record_failure(R, r);
                    break;
                }
            }
        }
        free(x);
    }
    if (oom) return sm_error("gptq: out of memory");
    if (R->bad_row != INT64_MAX) return sm_error("%s", R->bad_msg);
    return 0;
}

static int proxy_loss_rows(const sm_gptq_hinv *p, const float *W, const double *wq, int64_t rows, double *out,
                           double *per_row);

/* Refit sweeps (gq_fit_passes): the scales of a group (a k-quant super-block: its super-scale
 * and all its sub-scales) are fitted when the sweep reaches its first column, on weights that
 * the GPTQ updates from the group's own columns have not reached yet; the later columns of the
 * group then arrive at values the scales were not fitted for. Each further sweep starts again
 * from w0 and fits every group on the values the previous sweep actually quantized (R->seen),
 * then each row keeps the sweep with the least Hessian-weighted error tr(dw H dw^T) of that row
 * (rows are independent), so a refit never makes a row's error larger. */
static int refit_sweeps(gq_run *R, const double *w0, const float *W, int passes) {
    const int64_t rows = R->rows, n = R->n;
    const size_t rb = R->g->is_int ? 0 : R->g->row_bytes;
    double *best_w = malloc(sizeof(double) * (size_t)(rows * n)), *best = malloc(sizeof(double) * (size_t)rows);
    double *loss = malloc(sizeof(double) * (size_t)rows), total;
    uint8_t *best_codes = malloc((size_t)(rows * n)), *best_packed = rb ? malloc((size_t)rows * rb) : NULL;
    int rc = !best_w || !best || !loss || !best_codes || (rb && !best_packed) ? sm_error("gptq: out of memory") : 0;
    if (!rc) rc = proxy_loss_rows(R->p, W, R->W, rows, &total, best);
    if (!rc) {
        memcpy(best_w, R->W, sizeof(double) * (size_t)(rows * n));
        memcpy(best_codes, R->codes, (size_t)(rows * n));
        if (rb) memcpy(best_packed, R->g->packed, (size_t)rows * rb);
    }
    for (int pass = 1; pass < passes && !rc; pass++) {
        R->fit_seen = true;
        memcpy(R->W, w0, sizeof(double) * (size_t)(rows * n));
        rc = run_pass(R);
        R->fit_seen = false;
        if (!rc) rc = proxy_loss_rows(R->p, W, R->W, rows, &total, loss);
        for (int64_t r = 0; r < rows && !rc; r++) {
            if (!(loss[r] < best[r])) continue;
            best[r] = loss[r];
            memcpy(best_w + r * n, R->W + r * n, sizeof(double) * (size_t)n);
            memcpy(best_codes + r * n, R->codes + r * n, (size_t)n);
            if (rb) memcpy(best_packed + (size_t)r * rb, R->g->packed + (size_t)r * rb, rb);
        }
    }
    if (!rc) {
        memcpy(R->W, best_w, sizeof(double) * (size_t)(rows * n));
        memcpy(R->codes, best_codes, (size_t)(rows * n));
        if (rb) memcpy(R->g->packed, best_packed, (size_t)rows * rb);
    }
    free(best_w);
    free(best);
    free(loss);
    free(best_codes);
    free(best_packed);
    return rc;
}

/* tr(D H D^T) for the rows - quantized rows D of a rows x n weight, LOSS_ROWS rows at a time:
 * diff(user, r0, m, d) writes rows r0..r0+m of D into d; dev (H on the GPU) or H on the CPU. */
typedef void (*loss_diff_fn)(const void *user, int64_t r0, int64_t m, int64_t n, double *d);

static int loss_of(const double *H, sm_cuda_gptq *dev, int64_t n, int64_t rows, loss_diff_fn diff, const void *user,
                   double *out, double *per_row /* NULL, or each row's part (on the CPU) */) {
    if (per_row) dev = NULL;
    const int64_t chunk = rows < LOSS_ROWS ? rows : LOSS_ROWS;
    double *d = malloc(sizeof(double) * (size_t)(chunk * n)), *t = malloc(sizeof(double) * (size_t)(chunk * n));
    int rc = !d || !t ? sm_error("gptq: out of memory for the loss report") : 0;
    double total = 0;
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
        const int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
        diff(user, r0, m, n, d);
        if (dev) {
            double part;
            if (sm_cuda_gptq_loss(dev, d, m, &part)) rc = sm_error_ctx("gptq: loss report");
            else total += part;
            continue;
        }
        memset(t, 0, sizeof(double) * (size_t)(m * n));
        gq_gemm_args g = {.m = m, .n = n, .k = n, .sign = 1.0, .a = d, .a_rs = n, .a_cs = 1, .b = H, .b_rs = n,
                          .b_cs = 1, .c = t, .ldc = n, .parallel = true};
        if ((rc = gq_gemm(&g))) break;
        for (int64_t r = 0; r < m; r++) {
            double s = 0;
            for (int64_t c = 0; c < n; c++) s = fma(t[r * n + c], d[r * n + c], s);
            total += s;
            if (per_row) per_row[r0 + r] = s;
        }
    }
    free(d);
    free(t);
    *out = total;
    return rc ? -1 : 0;
}

/* W original order, Wq (double) in quantization order */
typedef struct perm_diff {
    const float *W;
    const double *wq;
    const int32_t *iperm;
} perm_diff;

static void diff_permuted(const void *user, int64_t r0, int64_t m, int64_t n, double *d) {
    const perm_diff *u = user;
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) d[r * n + c] = (double)u->W[(r0 + r) * n + c] - u->wq[(r0 + r) * n + u->iperm[c]];
}

static int proxy_loss_rows(const sm_gptq_hinv *p, const float *W, const double *wq, int64_t rows, double *out,
                           double *per_row) {
    const perm_diff u = {W, wq, p->iperm};
    return loss_of(p->H, p->dev_has_h ? p->dev : NULL, p->n, rows, diff_permuted, &u, out, per_row);
}

static int proxy_loss(const sm_gptq_hinv *p, const float *W, const double *wq, int64_t rows, double *out) {
    return proxy_loss_rows(p, W, wq, rows, out, NULL);
}

/* both float, the same order */
typedef struct plain_diff {
    const float *W, *Q;
} plain_diff;

static void diff_plain(const void *user, int64_t r0, int64_t m, int64_t n, double *d) {
    const plain_diff *u = user;
    for (int64_t i = 0; i < m * n; i++) d[i] = (double)u->W[r0 * n + i] - (double)u->Q[r0 * n + i];
}

int sm_gptq_proxy_loss(const double *H, int64_t cols, const float *W, const float *Q, int64_t rows, double *out) {
    const plain_diff u = {W, Q};
    return loss_of(H, NULL, cols, rows, diff_plain, &u, out, NULL);
}

void sm_gptq_result_free(sm_gptq_result *r) {
    free(r->deq);
    free(r->codes);
    free(r->scales);
    free(r->zeros);
    free(r->g_idx);
    free(r->perm);
    free(r->packed);
    memset(r, 0, sizeof *r);
}

int sm_gptq_quantize(const sm_gptq_hinv *p, const float *W, int64_t rows, const sm_gptq_opts *o, sm_gptq_result *res) {
    memset(res, 0, sizeof *res);
    const int64_t n = p->n;
    if (rows <= 0) return sm_error("gptq: %lld rows", (long long)rows);
    if (o->block_size <= 0) return sm_error("gptq: block size %d (must be positive)", o->block_size);
    if (o->gguf_type != SM_TYPE_INVALID && p->perm)
        return sm_error("gptq: act-order cannot be used with GGUF type %s: its blocks hold consecutive columns, so "
                        "the columns must be quantized in order", sm_type_name(o->gguf_type));
    for (int64_t i = 0; i < rows * n; i++)
        if (!isfinite(W[i]))
            return sm_error("gptq: weight (%lld, %lld) is not finite", (long long)(i / n), (long long)(i % n));

    gq_grid g;
    if (gq_grid_init(&g, o, rows, n)) return -1;
    gq_run R = {.p = p, .g = &g, .rows = rows, .n = n, .B = o->block_size > n ? n : o->block_size};
    R.static_groups = o->static_groups && g.is_int;
    /* the starting weights (quantization order, dead columns zeroed) are kept apart only when
     * a round-to-nearest pass for the report runs first */
    const int passes = gq_fit_passes(o, &g);
    const bool keep_start = !o->skip_loss || passes > 1;
    double *w0 = keep_start ? malloc(sizeof(double) * (size_t)(rows * n)) : NULL;
    R.W = malloc(sizeof(double) * (size_t)(rows * n));
    R.codes = malloc((size_t)(rows * n));
    R.E = malloc(sizeof(double) * (size_t)(rows * R.B));
    float *imp = NULL;
    bool *imp_ok = NULL;
    int rc = -1;
    if ((keep_start && !w0) || !R.W || !R.codes || !R.E) {
        sm_error("gptq: out of memory for a %lld x %lld weight", (long long)rows, (long long)n);
        goto done;
    }
    if (!g.is_int && o->use_importance) {
        imp = malloc(sizeof(float) * (size_t)n);
        imp_ok = malloc(sizeof(bool) * (size_t)g.n_groups);
        if (!imp || !imp_ok) {
            sm_error("gptq: out of memory");
            goto done;
        }
        for (int64_t c = 0; c < n; c++) imp[c] = (float)p->H[c * n + c];
        for (int64_t gi = 0; gi < g.n_groups; gi++) { /* GGUF: n is a multiple of the group */
            double sum = 0;
            for (int64_t c = gi * g.group; c < (gi + 1) * g.group; c++) sum += imp[c];
            imp_ok[gi] = sum > 0;
        }
        R.imp = imp;
        R.imp_ok = imp_ok;
    }
    double *start = keep_start ? w0 : R.W;
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++) {
            const int64_t c = p->perm ? p->perm[k] : k;
            start[r * n + k] = p->dead[c] ? 0.0 : (double)W[r * n + c];
        }
    if (R.static_groups && fit_static(&R, start)) goto done;

    if (!o->skip_loss) { /* round-to-nearest on the same grid, for the report */
        memcpy(R.W, w0, sizeof(double) * (size_t)(rows * n));
        R.feedback = false;
        if (run_pass(&R) || proxy_loss(p, W, R.W, rows, &res->loss_rtn)) goto done;
    }
    if (keep_start) memcpy(R.W, w0, sizeof(double) * (size_t)(rows * n));
    R.feedback = true;
    if (passes > 1 && !(R.seen = malloc(sizeof(double) * (size_t)(rows * n)))) {
        sm_error("gptq: out of memory for a %lld x %lld weight", (long long)rows, (long long)n);
        goto done;
    }
    const double t0 = sm_now();
    if (run_pass(&R) || (passes > 1 && refit_sweeps(&R, w0, W, passes))) goto done;
    res->seconds = sm_now() - t0;
    if (!o->skip_loss && proxy_loss(p, W, R.W, rows, &res->loss_gptq)) goto done;

    res->rows = rows;
    res->cols = n;
    res->n_groups = g.n_groups;
    if (!(res->deq = malloc(sizeof(float) * (size_t)(rows * n)))) goto oom;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++) res->deq[r * n + (p->perm ? p->perm[k] : k)] = (float)R.W[r * n + k];
    if (g.is_int) {
        res->codes = malloc((size_t)(rows * n));
        res->g_idx = malloc(sizeof(int32_t) * (size_t)n);
        if (!res->codes || !res->g_idx) goto oom;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < n; k++) res->codes[r * n + (p->perm ? p->perm[k] : k)] = R.codes[r * n + k];
        for (int64_t c = 0; c < n; c++)
            res->g_idx[c] = (int32_t)((R.static_groups || !p->perm ? c : p->iperm[c]) / g.group);
        if (p->perm) {
            if (!(res->perm = malloc(sizeof(int32_t) * (size_t)n))) goto oom;
            memcpy(res->perm, p->perm, sizeof(int32_t) * (size_t)n);
        }
        res->scales = g.scale_h;
        res->zeros = g.zero;
        g.scale_h = NULL;
        g.zero = NULL;
    } else {
        for (int64_t r = 0; r < rows; r++) gq_grid_pack_row(&g, r, R.codes + r * n);
        res->packed = g.packed;
        res->packed_bytes = (size_t)rows * g.row_bytes;
        g.packed = NULL;
    }
    rc = 0;
    goto done;
oom:
    sm_error("gptq: out of memory for the result");
done:
    if (rc) sm_gptq_result_free(res);
    gq_grid_free(&g);
    free(w0);
    free(R.W);
    free(R.codes);
    free(R.E);
    free(R.seen);
    free(imp);
    free(imp_ok);
    return rc;
}

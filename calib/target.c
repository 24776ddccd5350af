/* target.c - size-targeted mixtures: per-tensor sensitivities on calibration text, then the
 * per-tensor types that minimise the predicted loss under a size budget (calib.h). */
#include "calib/calib.h"

#include "convert/convert.h"
#include "formats/formats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sm_type KQUANTS[] = {SM_TYPE_Q2_K, SM_TYPE_Q3_K, SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q6_K, SM_TYPE_Q8_0};
/* rows of whole 32-blocks only (a 64-wide model): the block-32 types llama-quantize falls back to
 * for such rows (Q5_0 for Q4_K, Q5_1 for Q5_K, Q8_0 for Q6_K) and Q4_0/Q4_1, so that the plan has
 * steps of 0.5 bpw up to 6. IQ4_NL (its fallback for Q2_K/Q3_K) is left out: at Q4_0's size its
 * weighted squared error is within a few percent of Q4_0's, and choosing it on that difference
 * gave a higher KLD on the Qwen2 fixture at 5.0 bpw (0.0191 against 0.0176). */
static const sm_type BLOCK32[] = {SM_TYPE_Q4_0, SM_TYPE_Q4_1, SM_TYPE_Q5_0, SM_TYPE_Q5_1, SM_TYPE_Q8_0};

/* The candidates for rows of row_len; 0 when none fits (the tensor stays as it is). */
static int candidates(int64_t row_len, sm_type *out) {
    if (row_len % 256 == 0) {
        memcpy(out, KQUANTS, sizeof KQUANTS);
        return (int)(sizeof KQUANTS / sizeof KQUANTS[0]);
    }
    if (row_len % 32 == 0) {
        memcpy(out, BLOCK32, sizeof BLOCK32);
        return (int)(sizeof BLOCK32 / sizeof BLOCK32[0]);
    }
    return 0;
}

/* e(t) for every candidate: the importance-weighted squared error of quantizing t's rows. */
static int tensor_errors(const sm_tensor *t, const float *w_err, const float *w_quant, sm_target_tensor *tt) {
    const int64_t row = sm_tensor_row_len(t), nrows = sm_tensor_nrows(t);
    float *x = malloc((size_t)(row * nrows) * sizeof *x), *deq = malloc((size_t)row * sizeof *deq);
    void *q = malloc(sm_type_row_bytes(SM_TYPE_Q8_0, row) * (size_t)nrows + 64);
    int rc = -1;
    if (!x || !deq || !q) { sm_error("out of memory for tensor %s", t->name); goto done; }
    if (sm_plain_to_f32(t->type, t->data, x, row * nrows)) goto done;
    for (int c = 0; c < tt->n_cand; c++) {
        const sm_type ty = tt->cand[c];
        if (!sm_quantize_rows(ty, x, q, nrows, row, w_quant)) { sm_error_ctx("tensor %s", t->name); goto done; }
        const uint64_t rb = sm_type_row_bytes(ty, row);
        double err = 0;
        for (int64_t r = 0; r < nrows; r++) {
            if (sm_dequantize_row(ty, (const uint8_t *)q + rb * (uint64_t)r, deq, row)) goto done;
            const float *xr = x + r * row;
            for (int64_t j = 0; j < row; j++) {
                const double d = (double)xr[j] - (double)deq[j];
                err += (w_err ? (double)w_err[j] : 1.0) * d * d;
            }
        }
        tt->cand_err[c] = err > 0 ? err : 1e-30;
        tt->cand_bytes[c] = rb * (uint64_t)nrows;
    }
    rc = 0;
done:
    free(x);
    free(deq);
    free(q);
    return rc;
}

/* Everything in quantize opts for a probe: Q8_0 everywhere, tensor `name` (NULL: none) at `type`. */
static int probe_kld(const char *base, const char *tmp, const char *logits, const sm_ppl_opts *po, const char *name,
                     sm_type type, double *kld) {
    const char *names[1] = {name};
    sm_quantize_opts q = {.recipe = "Q8_0", .pure = true, .quiet = true, .plan_names = names, .plan_types = &type,
                          .n_plan = name ? 1 : 0};
    sm_quantize_report rep;
    const bool durable = sm_outfile_durable();
    sm_outfile_set_durable(false);
    int rc = sm_quantize_gguf(base, tmp, &q, &rep);
    sm_outfile_set_durable(durable);
    if (rc) return -1;
    sm_model *m = NULL;
    sm_ppl_result r;
    rc = sm_model_load(tmp, NULL, &m);
    if (rc == 0) rc = sm_kl_divergence(m, logits, po, &r);
    sm_model_free(m);
    unlink(tmp);
    if (rc) return -1;
    *kld = r.kld_mean;
    sm_ppl_result_free(&r);
    return 0;
}

/* Each tensor's pick for multiplier lambda: argmin loss + lambda * bytes. */
static uint64_t pick_all(sm_target_plan *p, double lambda) {
    uint64_t total = 0;
    for (size_t i = 0; i < p->n; i++) {
        sm_target_tensor *t = &p->t[i];
        int best = 0;
        for (int c = 1; c < t->n_cand; c++)
            if (t->cand_loss[c] + lambda * (double)t->cand_bytes[c] < t->cand_loss[best] + lambda * (double)t->cand_bytes[best])
                best = c;
        t->pick = best;
        total += t->cand_bytes[best];
    }
    return total;
}

/* The smallest and largest total of the candidates; an error when the budget is below the smallest. */
static int reachable(const sm_target_plan *p, uint64_t *lo, uint64_t *hi) {
    uint64_t lo_bytes = 0, hi_bytes = 0;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t mn = UINT64_MAX, mx = 0;
        for (int c = 0; c < p->t[i].n_cand; c++) {
            if (p->t[i].cand_bytes[c] < mn) mn = p->t[i].cand_bytes[c];
            if (p->t[i].cand_bytes[c] > mx) mx = p->t[i].cand_bytes[c];
        }
        lo_bytes += mn, hi_bytes += mx;
    }
    *lo = lo_bytes, *hi = hi_bytes;
    const double all = (double)p->n_params;
    if (p->budget_bytes < lo_bytes)
        return sm_error("the budget (%.3f bpw) is below the smallest mixture of these types (%.3f bpw)",
                        8.0 * (double)(p->budget_bytes + p->fixed_bytes) / all, 8.0 * (double)(lo_bytes + p->fixed_bytes) / all);
    return 0;
}

/* Spend the slack: the upgrade with the best loss decrease per byte that still fits, until none. */
static void spend_slack(sm_target_plan *p, uint64_t total) {
    for (;;) {
        size_t bi = 0;
        int bc = -1;
        double best = 0;
        for (size_t i = 0; i < p->n; i++) {
            const sm_target_tensor *t = &p->t[i];
            for (int c = 0; c < t->n_cand; c++) {
                if (t->cand_bytes[c] <= t->cand_bytes[t->pick] || t->cand_loss[c] >= t->cand_loss[t->pick]) continue;
                const uint64_t extra = t->cand_bytes[c] - t->cand_bytes[t->pick];
                if (total + extra > p->budget_bytes) continue;
                const double gain = (t->cand_loss[t->pick] - t->cand_loss[c]) / (double)extra;
                if (gain > best) best = gain, bi = i, bc = c;
            }
        }
        if (bc < 0) break;
        total += p->t[bi].cand_bytes[bc] - p->t[bi].cand_bytes[p->t[bi].pick];
        p->t[bi].pick = bc;
    }
}

/* The Lagrangian: lambda bisected (in log10) to the smallest that fits, then the slack spent. */
static void lagrangian(sm_target_plan *p) {
    double lo = -40, hi = 10; /* log10 lambda: hi fits, lo does not */
    if (pick_all(p, pow(10, hi)) > p->budget_bytes) hi = 30;
    for (int it = 0; it < 100; it++) {
        const double mid = (lo + hi) / 2;
        if (pick_all(p, pow(10, mid)) <= p->budget_bytes) hi = mid;
        else lo = mid;
    }
    spend_slack(p, pick_all(p, pow(10, hi)));
}

/* The multiple-choice knapsack solved exactly on sizes rounded up to units of the budget / about
 * 64 n (so the rounding leaves at most ~1/64 of it, then spent by spend_slack): the Lagrangian
 * only reaches the convex hull of each tensor's (bytes, loss) points and can leave much of the
 * budget unspent when one tensor is a large share of the model (a 64-wide model's token_embd).
 * Sets the picks; false (picks untouched) when out of memory or nothing fits at this resolution. */
static bool knapsack(sm_target_plan *p) {
    const size_t n = p->n;
    size_t cap = 64 * n < 4096 ? 4096 : 64 * n;
    if (cap > ((size_t)1 << 26) / (n ? n : 1)) cap = ((size_t)1 << 26) / (n ? n : 1); /* the choice table's bytes */
    const uint64_t unit = p->budget_bytes / cap + 1;
    cap = (size_t)(p->budget_bytes / unit);
    double *dp = malloc((cap + 1) * sizeof *dp), *next = malloc((cap + 1) * sizeof *next);
    uint8_t *choice = malloc(n * (cap + 1));
    bool ok = false;
    if (!dp || !next || !choice) goto done;
    for (size_t j = 0; j <= cap; j++) dp[j] = 0; /* dp[j]: the least loss of the tensors so far within j units */
    for (size_t i = 0; i < n; i++) {
        const sm_target_tensor *t = &p->t[i];
        uint8_t *ch = choice + i * (cap + 1);
        for (size_t j = 0; j <= cap; j++) {
            next[j] = INFINITY, ch[j] = 0;
            for (int c = 0; c < t->n_cand; c++) {
                const uint64_t u = (t->cand_bytes[c] + unit - 1) / unit;
                if (u > j || !isfinite(dp[j - u])) continue;
                const double v = dp[j - u] + t->cand_loss[c];
                if (v < next[j]) next[j] = v, ch[j] = (uint8_t)c;
            }
        }
        double *sw = dp;
        dp = next, next = sw;
    }
    if (!isfinite(dp[cap])) goto done;
    for (size_t i = n, j = cap; i-- > 0;) {
        sm_target_tensor *t = &p->t[i];
        t->pick = choice[i * (cap + 1) + j];
        j -= (size_t)((t->cand_bytes[t->pick] + unit - 1) / unit);
    }
    ok = true;
done:
    free(dp);
    free(next);
    free(choice);
    return ok;
}

static double picked_loss(const sm_target_plan *p, uint64_t *bytes) {
    double loss = 0;
    *bytes = 0;
    for (size_t i = 0; i < p->n; i++) loss += p->t[i].cand_loss[p->t[i].pick], *bytes += p->t[i].cand_bytes[p->t[i].pick];
    return loss;
}

static int solve(sm_target_plan *p) {
    uint64_t lo_bytes = 0, hi_bytes = 0;
    if (reachable(p, &lo_bytes, &hi_bytes)) return -1;
    if (p->budget_bytes >= hi_bytes) {
        pick_all(p, 0);
    } else {
        /* both solvers; the knapsack's plan where its predicted loss is lower */
        lagrangian(p);
        int *keep = malloc((p->n ? p->n : 1) * sizeof *keep);
        if (!keep) return sm_error("out of memory");
        for (size_t i = 0; i < p->n; i++) keep[i] = p->t[i].pick;
        uint64_t bytes;
        const double loss = picked_loss(p, &bytes);
        if (knapsack(p)) {
            picked_loss(p, &bytes);
            spend_slack(p, bytes);
            if (!(picked_loss(p, &bytes) < loss))
                for (size_t i = 0; i < p->n; i++) p->t[i].pick = keep[i];
        }
        free(keep);
    }
    const double all = (double)p->n_params;
    p->tensor_bytes = p->fixed_bytes;
    p->predicted_loss = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->types[i] = p->t[i].cand[p->t[i].pick];
        p->tensor_bytes += p->t[i].cand_bytes[p->t[i].pick];
        p->predicted_loss += p->t[i].cand_loss[p->t[i].pick];
    }
    p->bpw = 8.0 * (double)p->tensor_bytes / all;
    return 0;
}

/* The quantizable tensors (those a pure Q8_0 recipe would quantize) and their candidates. */
static int list_tensors(const sm_gguf *g, sm_target_plan *p) {
    const size_t nt = sm_gguf_n_tensors(g);
    const char **names = calloc(nt ? nt : 1, sizeof *names);
    p->t = calloc(nt ? nt : 1, sizeof *p->t);
    p->names = calloc(nt ? nt : 1, sizeof *p->names);
    p->types = calloc(nt ? nt : 1, sizeof *p->types);
    if (!names || !p->t || !p->names || !p->types) return free(names), sm_error("out of memory");
    for (size_t i = 0; i < nt; i++) names[i] = sm_gguf_tensor(g, i)->name;
    sm_recipe_plan rp;
    const sm_recipe_model rm = {sm_gguf_get_str(g, "general.architecture"), 1, 1, 1, 0};
    sm_recipe_plan_begin(&rp, sm_recipe_find("Q8_0"), names, nt, &rm, false);
    rp.pure = true;
    int rc = 0;
    for (size_t i = 0; i < nt; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        p->n_params += sm_tensor_nelements(t);
        sm_target_tensor *tt = &p->t[p->n];
        const bool quantizable = sm_recipe_tensor_type(&rp, t->name, t->n_dims, t->shape, t->type, NULL) != t->type;
        if (quantizable && sm_type_get(t->type)->quantized) {
            rc = sm_error("tensor %s is already quantized (%s): a size-targeted mixture needs an F32/F16/BF16 GGUF",
                          t->name, sm_type_name(t->type));
            break;
        }
        if (!quantizable || !(tt->n_cand = candidates(sm_tensor_row_len(t), tt->cand))) {
            p->fixed_bytes += t->nbytes;
            continue;
        }
        tt->name = strdup(t->name);
        tt->n_params = sm_tensor_nelements(t);
        p->names[p->n++] = tt->name;
    }
    sm_recipe_plan_free(&rp);
    free(names);
    return rc;
}

int sm_target_plan_make(const char *base_path, const sm_target_opts *o, sm_target_plan *p) {
    memset(p, 0, sizeof *p);
    const double t0 = sm_now();
    p->target_bpw = o->target_bpw;
    p->calib_path = o->calib_path;
    p->kld_probes = o->kld_probes;
    sm_gguf *g = NULL;
    sm_model *m = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    sm_imatrix calib_im = {0}, quant_im = {0};
    char tmp[256] = "", logits[256] = "";
    int rc = -1, slot_a = -1, slot_b = -1;
    if (!o->calib_path) { sm_error("a size-targeted mixture needs calibration text"); goto done; }
    if (sm_gguf_open(base_path, &g) || list_tensors(g, p)) goto done;
    if (o->target_bpw > 0) {
        const uint64_t all = (uint64_t)(o->target_bpw * (double)p->n_params / 8.0);
        p->budget_bytes = all > p->fixed_bytes ? all - p->fixed_bytes : 0;
    } else {
        uint64_t tensors = 0, size = 0;
        for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) tensors += sm_gguf_tensor(g, i)->nbytes;
        sm_mmap mm;
        if (sm_mmap_open(&mm, base_path)) goto done;
        size = mm.size;
        sm_mmap_close(&mm);
        const uint64_t header = size - tensors + 4096; /* the header, metadata and padding, with room for ours */
        p->budget_bytes = o->target_bytes > header + p->fixed_bytes ? o->target_bytes - header - p->fixed_bytes : 0;
        p->target_bpw = 8.0 * (double)(p->budget_bytes + p->fixed_bytes) / (double)p->n_params;
    }
    /* the calibration text: an importance matrix for the error weights (output head included) */
    const sm_tokenizer *tok = NULL;
    int32_t bos = -1;
    if (sm_model_load(base_path, NULL, &m) || sm_model_tokenizer(m, &tok) || sm_ppl_chunk_bos(tok, &bos) ||
        sm_calib_tokenize_file(tok, o->calib_path, false, &ids, &n_ids))
        goto done;
    const int64_t n_ctx_train = sm_model_hparams(m)->n_ctx_train, n_chunks = o->n_chunks > 0 ? o->n_chunks : 8;
    int64_t n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    if (n_ctx_train > 0 && n_ctx > n_ctx_train) n_ctx = n_ctx_train; /* the probes stay within the trained context */
    sm_imatrix_opts io = {.n_ctx = n_ctx, .n_chunks = n_chunks, .bos_id = bos, .process_output = true, .quiet = true,
                          .no_ppl = true};
    sm_imatrix_report irep;
    if (sm_imatrix_compute(m, ids, (int64_t)n_ids, &io, &calib_im, &irep)) goto done;
    if (o->imatrix_path && sm_imatrix_load(o->imatrix_path, &quant_im)) goto done;
    for (size_t i = 0; i < p->n; i++) {
        const sm_tensor *t = sm_gguf_find_tensor(g, p->t[i].name);
        const int64_t row = sm_tensor_row_len(t);
        const float *w_err = sm_imatrix_find(&calib_im, t->name, row, 0), *w_q = NULL;
        if (o->imatrix_path && sm_imatrix_for_tensor(&quant_im, o->imatrix_path, t->name, row, &w_q)) goto done;
        sm_clear_error();
        if (tensor_errors(t, w_err, w_q, &p->t[i])) goto done;
    }
    {
        uint64_t lo, hi;
        if (reachable(p, &lo, &hi)) goto done; /* before the probes' passes */
    }
    for (size_t i = 0; i < p->n; i++) /* the probe is the first (smallest) candidate */
        for (int c = 0; c < p->t[i].n_cand; c++) p->t[i].cand_loss[c] = p->t[i].cand_err[c];
    if (o->kld_probes) {
        const char *td = getenv("TMPDIR");
        snprintf(logits, sizeof logits, "%s/smelt-target-%d.logits", td && *td ? td : "/tmp", (int)getpid());
        snprintf(tmp, sizeof tmp, "%s/smelt-target-%d.gguf", td && *td ? td : "/tmp", (int)getpid());
        slot_a = sm_tmp_register(logits, false);
        slot_b = sm_tmp_register(tmp, false);
        sm_ppl_opts po = {.n_ctx = n_ctx, .n_chunks = n_chunks, .bos_id = bos, .save_logits = logits, .quiet = true};
        sm_ppl_result r;
        const bool durable = sm_outfile_durable();
        sm_outfile_set_durable(false);
        rc = sm_perplexity(m, ids, (int64_t)n_ids, &po, &r);
        sm_outfile_set_durable(durable);
        if (rc) goto done;
        rc = -1;
        sm_ppl_result_free(&r);
        sm_model_free(m);
        m = NULL;
        po.save_logits = NULL;
        if (probe_kld(base_path, tmp, logits, &po, NULL, SM_TYPE_Q8_0, &p->kld_q8)) goto done;
        sm_progress bar;
        sm_progress_begin(&bar, "sensitivity", p->n, o->quiet);
        double *delta = calloc(p->n ? p->n : 1, sizeof *delta), floor_ = INFINITY;
        if (!delta) { sm_error("out of memory"); goto done; }
        for (size_t i = 0; i < p->n; i++) {
            if (probe_kld(base_path, tmp, logits, &po, p->t[i].name, p->t[i].cand[0], &p->t[i].kld_probe)) {
                free(delta);
                sm_progress_end(&bar);
                goto done;
            }
            delta[i] = p->t[i].kld_probe - p->kld_q8;
            if (delta[i] > 0 && delta[i] < floor_) floor_ = delta[i];
            sm_progress_update(&bar, i + 1);
        }
        sm_progress_end(&bar);
        if (!isfinite(floor_)) floor_ = 1e-9;
        /* L_i(t) = s_i e_i(t) / e_i(probe); a probe lost in the noise gets half the smallest measured */
        for (size_t i = 0; i < p->n; i++) {
            const double s = delta[i] > 0 ? delta[i] : floor_ / 2;
            for (int c = 0; c < p->t[i].n_cand; c++) p->t[i].cand_loss[c] = s * p->t[i].cand_err[c] / p->t[i].cand_err[0];
        }
        free(delta);
    }
    if (solve(p)) goto done;
    p->seconds = sm_now() - t0;
    rc = 0;
done:
    if (logits[0]) unlink(logits), sm_tmp_forget(slot_a);
    if (tmp[0]) unlink(tmp), sm_tmp_forget(slot_b);
    sm_imatrix_free(&calib_im);
    sm_imatrix_free(&quant_im);
    free(ids);
    sm_model_free(m);
    sm_gguf_close(g);
    if (rc) sm_target_plan_free(p);
    return rc;
}

void sm_target_write_metadata(void *plan, struct sm_meta *w) {
    const sm_target_plan *p = plan;
    const char **types = calloc(p->n ? p->n : 1, sizeof *types);
    if (!types) return;
    for (size_t i = 0; i < p->n; i++) types[i] = sm_type_name(p->types[i]);
    sm_meta_set_f32(w, "smelt.mixture.target_bpw", (float)p->target_bpw);
    sm_meta_set_f32(w, "smelt.mixture.bpw", (float)p->bpw);
    sm_meta_set_str(w, "smelt.mixture.sensitivity", p->kld_probes ? "kld" : "imatrix");
    if (p->calib_path) sm_meta_set_str(w, "smelt.mixture.calib", p->calib_path);
    sm_meta_set_arr_str(w, "smelt.mixture.tensors", p->names, p->n);
    sm_meta_set_arr_str(w, "smelt.mixture.types", types, p->n);
    free(types);
}

void sm_target_plan_free(sm_target_plan *p) {
    for (size_t i = 0; i < p->n; i++) free(p->t[i].name);
    free(p->t);
    free(p->names);
    free(p->types);
    memset(p, 0, sizeof *p);
}

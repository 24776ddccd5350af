/* kld.c - KL divergence of a model against saved base log-probabilities, with the
 * statistics llama.cpp's --kl-divergence reports, computed as it computes them. */
#include "calib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What one scored position contributes. */
typedef struct pos_stat {
    float nll, nll_base, p_diff;
    double kld;
    bool same_top;
} pos_stat;

static float rd_f32(const unsigned char *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static uint16_t rd_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void position(const float *logits, int64_t n_vocab, const unsigned char *rec, int32_t tok, pos_stat *s) {
    float max_logit = logits[0];
    int64_t imax = 0;
    for (int64_t i = 1; i < n_vocab; i++)
        if (logits[i] > max_logit) {
            max_logit = logits[i];
            imax = i;
        }
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    const float scale = rd_f32(rec), min_log_prob = rd_f32(rec + 4);
    const unsigned char *q = rec + 8;
    s->nll = max_logit + log_sum_exp - logits[tok];
    s->nll_base = -(scale * rd_u16(q + 2 * tok) + min_log_prob);
    max_logit += log_sum_exp;
    double sum = 0;
    int64_t imax_base = -1;
    float p_log_base_max = 0;
    for (int64_t i = 0; i < n_vocab; i++) {
        const float p_log_base = scale * rd_u16(q + 2 * i) + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if (p_log_base > -16.f) {
            const float p_base = expf(p_log_base);
            sum += p_base * (p_log_base - logits[i] + max_logit);
        }
    }
    s->kld = sum;
    s->same_top = imax == imax_base;
    s->p_diff = expf(-s->nll) - expf(-s->nll_base);
}

/* llama.cpp's mean_and_uncertainty */
static void mean_unc(double sum, double sum2, int64_t count, double *mean, double *unc) {
    *mean = *unc = 0;
    if (count < 1) return;
    const double f = sum / (double)count;
    const double df = sum2 / (double)count - f * f;
    *mean = f;
    *unc = df > 0 && count > 10 ? sqrt(df / (double)(count - 1)) : 0.;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const float *v, int64_t n, float fraction) {
    if (fraction <= 0) return v[0];
    if (fraction >= 1) return v[n - 1];
    float p = fraction * (float)(n - 1);
    const int64_t ip = (int64_t)p;
    p -= (float)ip;
    return (1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1];
}

static void distribution(float *v, int64_t n, sm_dist *d) {
    qsort(v, (size_t)n, sizeof(float), cmp_float);
    d->min = v[0];
    d->max = v[n - 1];
    d->median = n % 2 == 0 ? 0.5f * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
    d->p01 = percentile(v, n, 0.001f);
    d->p1 = percentile(v, n, 0.01f);
    d->p5 = percentile(v, n, 0.05f);
    d->p10 = percentile(v, n, 0.10f);
    d->p25 = percentile(v, n, 0.25f);
    d->p75 = percentile(v, n, 0.75f);
    d->p90 = percentile(v, n, 0.90f);
    d->p95 = percentile(v, n, 0.95f);
    d->p99 = percentile(v, n, 0.99f);
    d->p999 = percentile(v, n, 0.999f);
}

/* Where the base log-probabilities come from: a saved file, or a base model evaluated on the
 * same chunks (its records are made in memory exactly as --save-logits would write them). */
typedef struct base_src {
    const sm_logits_file *file;
    const sm_model *model;
    sm_context *ctx;
    float *logits;
    int32_t *scratch;
    uint16_t *recs;
} base_src;

/* The scored records of chunk c (consecutive, nv uint16 each). */
static const unsigned char *base_records(base_src *b, int64_t c, const int32_t *toks, int64_t n_ctx, int32_t bos_id) {
    if (b->file) return sm_logits_file_record(b->file, c, 0);
    const int64_t n_vocab = sm_model_hparams(b->model)->n_vocab, first = n_ctx / 2, scored = n_ctx - 1 - first;
    const int64_t nv = sm_logits_record_len(n_vocab);
    if (sm_eval_chunk(b->model, b->ctx, toks, n_ctx, bos_id, b->scratch, b->logits)) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < scored; j++)
        sm_logits_record_encode(b->logits + j * n_vocab, n_vocab, toks[first + j + 1], b->recs + j * nv);
    return (const unsigned char *)b->recs;
}

static int run(const sm_model *m, base_src *b, const int32_t *tokens, int64_t n_ctx, int64_t n_chunks,
               const sm_ppl_opts *o, sm_ppl_result *r) {
    const int64_t n_vocab = sm_model_hparams(m)->n_vocab, nv = sm_logits_record_len(n_vocab);
    const int64_t first = n_ctx / 2, scored = n_ctx - 1 - first, count = n_chunks * scored;
    sm_context *ctx = NULL;
    float *logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)n_vocab);
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t)n_ctx);
    pos_stat *st = malloc(sizeof(pos_stat) * (size_t)scored);
    float *kld_v = malloc(sizeof(float) * (size_t)count), *dp_v = malloc(sizeof(float) * (size_t)count);
    r->chunk_nll = malloc(sizeof(double) * (size_t)n_chunks);
    int rc = -1;
    if (!logits || !chunk || !st || !kld_v || !dp_v || !r->chunk_nll) {
        sm_error("out of memory");
        goto done;
    }
    if (sm_context_new_on(m, o->device, n_ctx, o->n_batch, &ctx)) goto done;
    sm_context_set_int_dot(ctx, o->int_dot);

    double s_nll = 0, s_nll2 = 0, s_base = 0, s_base2 = 0, s_nb = 0, s_kld = 0, s_kld2 = 0;
    double s_dp = 0, s_dp2 = 0, s_dp4 = 0;
    int64_t n_same = 0;
    sm_progress prog;
    sm_progress_begin(&prog, "kl-divergence", (uint64_t)n_chunks, o->quiet);
    const double t0 = sm_now();
    for (int64_t c = 0; c < n_chunks; c++) {
        const int32_t *toks = tokens + c * n_ctx;
        const unsigned char *recs = base_records(b, c, toks, n_ctx, o->bos_id);
        if (!recs || sm_eval_chunk(m, ctx, toks, n_ctx, o->bos_id, chunk, logits)) {
            sm_progress_end(&prog);
            goto done;
        }
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < scored; j++)
            position(logits + j * n_vocab, n_vocab, recs + (size_t)(j * nv) * 2, toks[first + j + 1], &st[j]);
        double chunk_sum = 0;
        for (int64_t j = 0; j < scored; j++) {
            const pos_stat *s = &st[j];
            s_nll += s->nll;
            s_nll2 += s->nll * s->nll;
            s_base += s->nll_base;
            s_base2 += s->nll_base * s->nll_base;
            s_nb += s->nll * s->nll_base;
            s_kld += s->kld;
            s_kld2 += s->kld * s->kld;
            s_dp += s->p_diff;
            const double dp2 = s->p_diff * s->p_diff;
            s_dp2 += dp2;
            s_dp4 += dp2 * dp2;
            n_same += s->same_top;
            kld_v[c * scored + j] = (float)s->kld;
            dp_v[c * scored + j] = s->p_diff;
            chunk_sum += s->nll;
        }
        r->chunk_nll[c] = chunk_sum / (double)scored;
        prog.done = (uint64_t)c + 1;
        sm_progress_note(&prog, "PPL %.4f  KLD %.6f", exp(s_nll / (double)((c + 1) * scored)),
                         s_kld / (double)((c + 1) * scored));
    }
    r->seconds = sm_now() - t0;
    sm_progress_end(&prog);

    r->has_kld = true;
    r->n_ctx = n_ctx;
    r->n_chunks = n_chunks;
    r->n_scored = count;
    r->tokens_per_second = r->seconds > 0 ? (double)(n_chunks * n_ctx) / r->seconds : 0;
    double lp, lp_unc, lb, lb_unc;
    mean_unc(s_nll, s_nll2, count, &lp, &lp_unc);
    mean_unc(s_base, s_base2, count, &lb, &lb_unc);
    r->mean_nll = lp;
    r->ppl = exp(lp);
    r->ppl_stderr = r->ppl * lp_unc;
    r->ppl_base = exp(lb);
    r->ppl_base_stderr = r->ppl_base * lb_unc;
    const double cov = count < 10 ? 0.0 : (s_nb / (double)count - (s_nll / (double)count) * (s_base / (double)count)) /
                                              (double)(count - 1);
    r->ppl_correlation = lp_unc * lb_unc > 0 ? cov / (lp_unc * lb_unc) : 0;
    r->ln_ppl_ratio = lp - lb;
    const double ratio_var = lp_unc * lp_unc + lb_unc * lb_unc - 2.0 * cov;
    r->ln_ppl_ratio_stderr = ratio_var > 0 ? sqrt(ratio_var) : 0;
    r->ppl_ratio = exp(r->ln_ppl_ratio);
    r->ppl_ratio_stderr = r->ppl_ratio * r->ln_ppl_ratio_stderr;
    r->delta_ppl = r->ppl - r->ppl_base;
    const double diff_var = r->ppl_stderr * r->ppl_stderr + r->ppl_base_stderr * r->ppl_base_stderr -
                            2.0 * r->ppl * r->ppl_base * cov;
    r->delta_ppl_stderr = diff_var > 0 ? sqrt(diff_var) : 0;
    mean_unc(s_kld, s_kld2, count, &r->kld_mean, &r->kld_stderr);
    mean_unc(s_dp, s_dp2, count, &r->dp_mean, &r->dp_stderr);
    double mse, mse_unc;
    mean_unc(s_dp2, s_dp4, count, &mse, &mse_unc);
    r->rms_dp = sqrt(mse);
    r->rms_dp_stderr = r->rms_dp > 0 ? 0.5 / r->rms_dp * mse_unc : 0;
    r->top1_agreement = (double)n_same / (double)count;
    r->top1_stderr = count > 1 ? sqrt(r->top1_agreement * (1 - r->top1_agreement) / (double)(count - 1)) : 0;
    distribution(kld_v, count, &r->kld);
    distribution(dp_v, count, &r->dp);
    rc = 0;
done:
    if (rc) sm_ppl_result_free(r);
    free(dp_v);
    free(kld_v);
    free(st);
    free(chunk);
    free(logits);
    sm_context_free(ctx);
    return rc;
}

int sm_kl_divergence(const sm_model *m, const char *base_path, const sm_ppl_opts *o, sm_ppl_result *r) {
    memset(r, 0, sizeof *r);
    sm_logits_file f;
    if (sm_logits_file_open(base_path, &f)) return -1;
    const int64_t n_vocab = sm_model_hparams(m)->n_vocab, n_ctx = f.n_ctx;
    int64_t n_chunks = f.n_chunk;
    if (o->n_chunks > 0 && o->n_chunks < n_chunks) n_chunks = o->n_chunks;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(n_chunks * n_ctx));
    int rc = -1;
    if (f.n_vocab != n_vocab)
        sm_error("%s: saved with a vocabulary of %d tokens, the model has %lld", base_path, f.n_vocab, (long long)n_vocab);
    else if (!tokens)
        sm_error("out of memory");
    else {
        for (int64_t i = 0; i < n_chunks * n_ctx; i++) tokens[i] = sm_logits_file_token(&f, i);
        base_src b = {.file = &f};
        rc = run(m, &b, tokens, n_ctx, n_chunks, o, r);
    }
    free(tokens);
    sm_logits_file_close(&f);
    return rc;
}

int sm_kl_divergence_models(const sm_model *m, const sm_model *base, const int32_t *tokens, int64_t n_tokens,
                            const sm_ppl_opts *o, sm_ppl_result *r) {
    memset(r, 0, sizeof *r);
    const int64_t n_ctx = o->n_ctx > 0 ? o->n_ctx : 512, n_vocab = sm_model_hparams(m)->n_vocab;
    if (sm_model_hparams(base)->n_vocab != n_vocab)
        return sm_error("the base model has a vocabulary of %lld tokens, the model %lld",
                        (long long)sm_model_hparams(base)->n_vocab, (long long)n_vocab);
    if (n_ctx < 4) return sm_error("KL divergence needs a context of at least 4 tokens");
    if (n_tokens < 2 * n_ctx)
        return sm_error("KL divergence with a context of %lld needs at least %lld tokens; the text has %lld",
                        (long long)n_ctx, (long long)(2 * n_ctx), (long long)n_tokens);
    int64_t n_chunks = n_tokens / n_ctx;
    if (o->n_chunks > 0 && o->n_chunks < n_chunks) n_chunks = o->n_chunks;
    const int64_t first = n_ctx / 2, scored = n_ctx - 1 - first;
    base_src b = {.model = base};
    b.logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)n_vocab);
    b.scratch = malloc(sizeof(int32_t) * (size_t)n_ctx);
    b.recs = malloc(sizeof(uint16_t) * (size_t)(scored * sm_logits_record_len(n_vocab)));
    int rc = -1;
    if (!b.logits || !b.scratch || !b.recs) sm_error("out of memory");
    else if (sm_context_new_on(base, o->device, n_ctx, o->n_batch, &b.ctx) == 0)
        rc = run(m, &b, tokens, n_ctx, n_chunks, o, r);
    sm_context_free(b.ctx);
    free(b.recs);
    free(b.scratch);
    free(b.logits);
    return rc;
}

/* ppl.c - perplexity with llama.cpp's protocol (see calib.h), optionally saving the
 * compressed log-probabilities for a later KL-divergence run. */
#include "calib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sm_eval_chunk(const sm_model *m, sm_context *ctx, const int32_t *chunk, int64_t n_ctx, int32_t bos_id,
                  int32_t *scratch, float *logits) {
    memcpy(scratch, chunk, sizeof(int32_t) * (size_t)n_ctx);
    if (bos_id >= 0) scratch[0] = bos_id;
    sm_context_clear(ctx);
    return sm_model_eval(m, ctx, scratch, n_ctx, 0, n_ctx / 2, logits);
}

int sm_ppl_chunk_bos(const sm_tokenizer *t, int32_t *bos) {
    /* what llama_tokenize(add_special) puts around an empty text tells add_bos / add_eos */
    int32_t *ids = NULL;
    size_t n = 0;
    if (sm_tokenize(t, "", 0, SM_TOK_ADD_SPECIAL, &ids, &n)) return -1;
    const int32_t b = sm_tokenizer_bos(t), e = sm_tokenizer_eos(t);
    const bool adds_bos = n > 0 && ids[0] == b, adds_eos = n > 0 && ids[n - 1] == e && (n > 1 || !adds_bos);
    free(ids);
    if (adds_eos) return sm_error("the vocabulary adds EOS after every text; perplexity is not defined for it");
    *bos = adds_bos ? b : -1;
    return 0;
}

/* -log softmax(logits)[tok] as llama.cpp's log_softmax computes it */
double sm_token_nll(const float *logits, int64_t n_vocab, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) max_logit = fmaxf(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    return -((double)(logits[tok] - max_logit) - log(sum_exp));
}

void sm_ppl_result_free(sm_ppl_result *r) {
    if (!r) return;
    free(r->chunk_nll);
    r->chunk_nll = NULL;
}

static int write_all(sm_outfile *o, const void *p, size_t n) { return sm_outfile_write(o, p, n); }

int sm_perplexity(const sm_model *m, const int32_t *tokens, int64_t n_tokens, const sm_ppl_opts *o,
                  sm_ppl_result *r) {
    memset(r, 0, sizeof *r);
    const int64_t n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    const int64_t n_vocab = sm_model_hparams(m)->n_vocab;
    if (n_ctx < 4) return sm_error("perplexity needs a context of at least 4 tokens");
    if (n_tokens < 2 * n_ctx)
        return sm_error("perplexity with a context of %lld needs at least %lld tokens; the text has %lld",
                        (long long)n_ctx, (long long)(2 * n_ctx), (long long)n_tokens);
    if (n_ctx > INT32_MAX || n_vocab > INT32_MAX) return sm_error("context or vocabulary too large");
    int64_t n_chunks = n_tokens / n_ctx;
    if (o->n_chunks > 0 && o->n_chunks < n_chunks) n_chunks = o->n_chunks;
    const int64_t first = n_ctx / 2, scored = n_ctx - 1 - first;

    sm_context *ctx = NULL;
    if (sm_context_new_on(m, o->device, n_ctx, o->n_batch, &ctx)) return -1;
    sm_context_set_int_dot(ctx, o->int_dot);
    float *logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)n_vocab);
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t)n_ctx);
    double *v = malloc(sizeof(double) * (size_t)scored);
    r->chunk_nll = malloc(sizeof(double) * (size_t)n_chunks);
    const int64_t nv = sm_logits_record_len(n_vocab);
    uint16_t *recs = o->save_logits ? malloc(sizeof(uint16_t) * (size_t)(scored * nv)) : NULL;
    sm_outfile *out = NULL;
    int rc = -1;
    if (!logits || !chunk || !v || !r->chunk_nll || (o->save_logits && !recs)) {
        sm_error("out of memory");
        goto done;
    }
    if (o->save_logits) {
        out = sm_outfile_open(o->save_logits);
        if (!out) goto done;
        const int32_t hdr[3] = {(int32_t)n_ctx, (int32_t)n_vocab, (int32_t)n_chunks};
        if (write_all(out, "_logits_", 8) || write_all(out, hdr, sizeof hdr) ||
            write_all(out, tokens, sizeof(int32_t) * (size_t)(n_chunks * n_ctx)))
            goto done;
    }

    sm_progress prog;
    sm_progress_begin(&prog, "perplexity", (uint64_t)n_chunks, o->quiet);
    double nll = 0, nll2 = 0;
    const double t0 = sm_now();
    for (int64_t c = 0; c < n_chunks; c++) {
        const int32_t *ct = tokens + c * n_ctx;
        if (sm_eval_chunk(m, ctx, ct, n_ctx, o->bos_id, chunk, logits)) goto done_prog;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < scored; j++) {
            const float *lj = logits + j * n_vocab;
            const int32_t next = ct[first + j + 1];
            v[j] = recs ? sm_logits_record_encode(lj, n_vocab, next, recs + j * nv) : sm_token_nll(lj, n_vocab, next);
        }
        double chunk_sum = 0;
        for (int64_t j = 0; j < scored; j++) {
            nll += v[j];
            nll2 += v[j] * v[j];
            chunk_sum += v[j];
        }
        r->chunk_nll[c] = chunk_sum / (double)scored;
        if (out && write_all(out, recs, sizeof(uint16_t) * (size_t)(scored * nv))) goto done_prog;
        prog.done = (uint64_t)c + 1;
        sm_progress_note(&prog, "PPL %.4f", exp(nll / (double)((c + 1) * scored))); /* llama-perplexity's running value */
    }
    r->seconds = sm_now() - t0;
    sm_progress_end(&prog);
    if (out) {
        rc = sm_outfile_commit(out);
        out = NULL;
        if (rc) goto done;
        rc = -1;
    }
    const int64_t count = n_chunks * scored;
    r->n_ctx = n_ctx;
    r->n_chunks = n_chunks;
    r->n_scored = count;
    r->mean_nll = nll / (double)count;
    r->ppl = exp(r->mean_nll);
    const double var = nll2 / (double)count - r->mean_nll * r->mean_nll;
    r->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * r->ppl : 0;
    r->tokens_per_second = r->seconds > 0 ? (double)(n_chunks * n_ctx) / r->seconds : 0;
    rc = 0;
    goto done;
done_prog:
    sm_progress_end(&prog);
done:
    sm_outfile_abort(out);
    if (rc) sm_ppl_result_free(r);
    free(recs);
    free(v);
    free(chunk);
    free(logits);
    sm_context_free(ctx);
    return rc;
}

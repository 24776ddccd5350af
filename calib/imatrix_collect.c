/* imatrix_collect.c - importance matrices from a forward pass, as llama-imatrix computes them:
 * an activation observer on the runtime sums, per linear input and input column, the squares
 * of the activations of every evaluated token. Linears that share an input (q/k/v, gate/up)
 * share one sum, stored under each weight's name.
 *
 * A mixture of experts (SM_FEAT_MOE): the router ffn_gate_inp reads every token's ffn_norm(x)
 * (a dense entry, the observer's SM_IN_FFN); the expert observer gives each expert the tokens
 * routed to it, and, as llama-imatrix's GGML_OP_MUL_MAT_ID branch, expert e's row of the
 * 3-D entries sums the squares of those tokens' inputs and its count is their number:
 * ffn_norm(x) for ffn_gate_exps and ffn_up_exps, silu(gate) * up for ffn_down_exps. */
#include "calib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* linear inputs per block (SM_IN_OUTPUT is model-wide) */
#define N_BLOCK_IN SM_IN_OUTPUT

typedef struct collector {
    int64_t n_layer;
    int64_t cols[SM_IN_COUNT];
    double *sums[SM_IN_COUNT];   /* [n_layer][cols] per block input; [cols] for the output */
    int64_t count[SM_IN_COUNT];  /* tokens seen by layer 0's input (every layer sees as many) */
    /* SM_FEAT_MOE: per layer and expert, the sums of its two inputs and its routed tokens */
    int64_t n_expert, exp_cols[2];   /* [0]: SM_IN_FFN (n_embd), [1]: SM_IN_FFN_DOWN (n_ff_exp) */
    double *exp_sums[2];             /* [n_layer][n_expert][exp_cols] */
    int64_t *exp_count;              /* [n_layer][n_expert] */
} collector;

static void add_squares(double *acc, const float *x, int64_t ld, int64_t cols, int64_t n_tok) {
#pragma omp parallel for schedule(static) if (cols * n_tok >= (1 << 16))
    for (int64_t f = 0; f < cols; f++) {
        const float *row = x + f * ld;
        double s = 0.0;
        for (int64_t t = 0; t < n_tok; t++) s += (double)row[t] * (double)row[t];
        acc[f] += s;
    }
}

static int observe(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                   int64_t n_tok) {
    collector *c = user;
    if (which >= SM_IN_COUNT || cols != c->cols[which]) return sm_error("imatrix: unexpected activation shape");
    double *acc = c->sums[which] + (which == SM_IN_OUTPUT ? 0 : layer * cols);
    if (which == SM_IN_OUTPUT || layer == 0) c->count[which] += n_tok;
    add_squares(acc, x, ld, cols, n_tok);
    return 0;
}

static int observe_expert(void *user, int64_t layer, int64_t expert, sm_linear_input which, const float *x, int64_t ld,
                          int64_t cols, int64_t n_tok, const int32_t *tok, const float *weight) {
    (void)tok, (void)weight;
    collector *c = user;
    const int k = sm_expert_input(which);
    if (k < 0 || cols != c->exp_cols[k] || layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert)
        return sm_error("imatrix: unexpected expert activation shape");
    const int64_t le = layer * c->n_expert + expert;
    if (k == 0) c->exp_count[le] += n_tok;
    add_squares(c->exp_sums[k] + le * cols, x, ld, cols, n_tok);
    return 0;
}

/* The MoE entries of layer l: the router's (dense) and the three expert stacks'. */
static int store_experts(sm_imatrix *out, const collector *c, int64_t l, float *tmp) {
    const int64_t NE = c->n_expert;
    static const char *const STACK[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    char name[96];
    snprintf(name, sizeof name, "blk.%lld.ffn_gate_inp.weight", (long long)l);
    const int64_t E = c->cols[SM_IN_FFN];
    for (int64_t i = 0; i < E; i++) tmp[i] = (float)c->sums[SM_IN_FFN][l * E + i];
    if (sm_imatrix_add(out, name, 1, E, tmp, &c->count[SM_IN_FFN])) return -1;
    for (int s = 0; s < 3; s++) {
        const int k = s == 2;
        const int64_t cols = c->exp_cols[k];
        const double *src = c->exp_sums[k] + l * NE * cols;
        for (int64_t i = 0; i < NE * cols; i++) tmp[i] = (float)src[i];
        snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, STACK[s]);
        if (sm_imatrix_add(out, name, NE, cols, tmp, c->exp_count + l * NE)) return -1;
    }
    return 0;
}

static int store(sm_imatrix *out, const char *name, const double *sums, int64_t cols, int64_t count, float *tmp) {
    for (int64_t i = 0; i < cols; i++) tmp[i] = (float)sums[i];
    return sm_imatrix_add(out, name, 1, cols, tmp, &count);
}

int sm_imatrix_compute(const sm_model *m, const int32_t *tokens, int64_t n_tokens, const sm_imatrix_opts *o,
                       sm_imatrix *out, sm_imatrix_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = sm_now();
    const sm_hparams *hp = sm_model_hparams(m);
    const int64_t n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    if (n_tokens < 2 * n_ctx)
        return sm_error("imatrix: %lld tokens of text; a context of %lld needs at least %lld", (long long)n_tokens,
                        (long long)n_ctx, (long long)(2 * n_ctx));
    int64_t n_chunk = n_tokens / n_ctx;
    if (o->n_chunks > 0 && o->n_chunks < n_chunk) n_chunk = o->n_chunks;
    const bool want_output = o->process_output && !hp->tied_embeddings;
    /* the perplexity needs the logits of the second half of each chunk (llama-imatrix's
     * estimate); --process-output needs the output head's input for every token */
    const bool want_ppl = !o->no_ppl;
    const int64_t first = n_ctx / 2, scored = n_ctx - 1 - first, out_first = want_output ? 0 : first;
    const int64_t n_vocab = hp->n_vocab;
    double *v = NULL;

    collector col = {.n_layer = hp->n_layer};
    int64_t r, c;
    sm_context *ctx = NULL;
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t)n_ctx);
    float *logits = NULL, *tmp = NULL;
    int rc = -1;
    if (!chunk) goto oom;
    /* the input widths: attn_q's, attn_output's, ffn_gate's, ffn_down's and the embedding's
     * (a mixture of experts: the router's, n_embd; its experts' are collected apart) */
    const bool moe = (hp->features & SM_FEAT_MOE) != 0;
    const sm_linear first_of[N_BLOCK_IN] = {SM_LIN_Q, SM_LIN_O, SM_LIN_GATE, SM_LIN_DOWN};
    for (int i = 0; i < N_BLOCK_IN; i++) {
        if (moe && i >= SM_IN_FFN) {
            col.cols[i] = i == SM_IN_FFN ? hp->n_embd : 1;
            continue;
        }
        if (sm_model_linear_shape(m, 0, first_of[i], &r, &c)) goto done;
        col.cols[i] = c;
    }
    col.cols[SM_IN_OUTPUT] = hp->n_embd;
    int64_t max_cols = 0;
    if (moe) {
        col.n_expert = hp->n_expert;
        col.exp_cols[0] = hp->n_embd;
        col.exp_cols[1] = hp->n_ff_exp;
        for (int k = 0; k < 2; k++) {
            if (!(col.exp_sums[k] = calloc((size_t)(hp->n_layer * hp->n_expert * col.exp_cols[k]), sizeof(double))))
                goto oom;
            if (hp->n_expert * col.exp_cols[k] > max_cols) max_cols = hp->n_expert * col.exp_cols[k];
        }
        if (!(col.exp_count = calloc((size_t)(hp->n_layer * hp->n_expert), sizeof(int64_t)))) goto oom;
    }
    for (int i = 0; i < SM_IN_COUNT; i++) {
        const int64_t n = i == SM_IN_OUTPUT ? 1 : hp->n_layer;
        col.sums[i] = calloc((size_t)(n * col.cols[i]), sizeof(double));
        if (!col.sums[i]) goto oom;
        if (col.cols[i] > max_cols) max_cols = col.cols[i];
    }
    tmp = malloc(sizeof(float) * (size_t)max_cols);
    if (want_output || want_ppl) logits = malloc(sizeof(float) * (size_t)(n_ctx - out_first) * (size_t)n_vocab);
    if (want_ppl) v = malloc(sizeof(double) * (size_t)scored);
    if (!tmp || ((want_output || want_ppl) && !logits) || (want_ppl && !v)) goto oom;

    if (sm_context_new(m, n_ctx, n_ctx, &ctx) || sm_context_set_observer(ctx, observe, &col) ||
        (moe && sm_context_set_expert_observer(ctx, observe_expert, &col)))
        goto done;
    sm_progress prog;
    sm_progress_begin(&prog, "imatrix", (uint64_t)n_chunk, o->quiet);
    double nll = 0, nll2 = 0;
    for (int64_t k = 0; k < n_chunk; k++) {
        const int32_t *ct = tokens + k * n_ctx;
        memcpy(chunk, ct, sizeof(int32_t) * (size_t)n_ctx);
        if (o->bos_id >= 0) chunk[0] = o->bos_id;
        sm_context_clear(ctx);
        if (sm_model_eval(m, ctx, chunk, n_ctx, 0, out_first, (want_output || want_ppl) ? logits : NULL)) {
            sm_progress_end(&prog);
            goto done;
        }
        if (!want_ppl) {
            sm_progress_update(&prog, (uint64_t)(k + 1));
            continue;
        }
        /* as llama-imatrix's process_logits: the original tokens (not the BOS) are the targets */
        const float *lf = logits + (first - out_first) * n_vocab;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < scored; j++) v[j] = sm_token_nll(lf + j * n_vocab, n_vocab, ct[first + j + 1]);
        for (int64_t j = 0; j < scored; j++) {
            nll += v[j];
            nll2 += v[j] * v[j];
        }
        prog.done = (uint64_t)k + 1;
        sm_progress_note(&prog, "PPL %.4f", exp(nll / (double)((k + 1) * scored))); /* llama-imatrix's running value */
    }
    sm_progress_end(&prog);
    if (want_ppl) {
        const int64_t count = n_chunk * scored;
        const double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
        rep->n_scored = count;
        rep->ppl = exp(mean);
        rep->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * rep->ppl : 0;
    }

    /* entries, named as llama.cpp names the weights */
    char name[96];
    for (int64_t l = 0; l < hp->n_layer; l++) {
        if (moe && store_experts(out, &col, l, tmp)) goto done;
        for (int i = 0; i < SM_LIN_COUNT; i++) {
            const sm_linear_input in = sm_linear_input_of((sm_linear)i);
            if (moe && in >= SM_IN_FFN) continue;
            int64_t row0;
            const char *stem = sm_model_linear_tensor(m, (sm_linear)i, &row0);
            if (row0) continue; /* a later part of a fused tensor: its entry is its first part's (one input) */
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, stem);
            if (store(out, name, col.sums[in] + l * col.cols[in], col.cols[in], col.count[in], tmp)) goto done;
        }
    }
    if (want_output && store(out, "output.weight", col.sums[SM_IN_OUTPUT], hp->n_embd, col.count[SM_IN_OUTPUT], tmp))
        goto done;
    if (o->dataset && sm_imatrix_add_dataset(out, o->dataset)) goto done;
    out->chunk_count = (int32_t)n_chunk;
    out->chunk_size = (int32_t)n_ctx;
    rep->n_chunks = n_chunk;
    rep->n_tokens = n_chunk * n_ctx;
    rep->seconds = sm_now() - t0;
    rep->tokens_per_second = rep->seconds > 0 ? (double)rep->n_tokens / rep->seconds : 0.0;
    rc = 0;
    goto done;
oom:
    sm_error("out of memory");
done:
    sm_context_free(ctx);
    for (int i = 0; i < SM_IN_COUNT; i++) free(col.sums[i]);
    free(col.exp_sums[0]);
    free(col.exp_sums[1]);
    free(col.exp_count);
    free(chunk);
    free(logits);
    free(tmp);
    free(v);
    return rc;
}

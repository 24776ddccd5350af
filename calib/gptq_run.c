/* gptq_run.c - layer-by-layer streaming GPTQ over a whole model (see calib.h): the residual
 * streams of all calibration samples pass through one decoder block at a time; an activation
 * observer turns the inputs of the group being quantized into a Hessian and stops the block
 * there; the group is quantized; the next pass sees its quantized weights. */
#include "calib/calib.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the groups of linears that share an input, in true-sequential order */
static const struct {
    sm_linear_input in;
    int n;
    sm_linear lin[3];
} GROUPS[] = {
    {SM_IN_ATTN, 3, {SM_LIN_Q, SM_LIN_K, SM_LIN_V}},
    {SM_IN_ATTN_OUT, 1, {SM_LIN_O}},
    {SM_IN_FFN, 2, {SM_LIN_GATE, SM_LIN_UP}},
    {SM_IN_FFN_DOWN, 1, {SM_LIN_DOWN}},
};
#define N_GROUPS 4

_Static_assert((int)SM_CUDA_IN_ATTN == (int)SM_IN_ATTN && (int)SM_CUDA_IN_ATTN_OUT == (int)SM_IN_ATTN_OUT &&
                   (int)SM_CUDA_IN_FFN == (int)SM_IN_FFN && (int)SM_CUDA_IN_FFN_DOWN == (int)SM_IN_FFN_DOWN,
               "kernels.h's observed inputs follow model.h's");

/* The observer: feeds the wanted inputs of one layer to their Hessians, stops at `stop_at`.
 * With a GPU block, the passes run there and feed device Hessians directly. */
typedef struct capture {
    int64_t layer;
    sm_hessian *h[SM_IN_COUNT]; /* NULL: not wanted in this pass */
    sm_linear_input stop_at;
    double seconds;             /* spent accumulating */
    double *absum[SM_IN_COUNT]; /* AWQ: per column sum of |x| (NULL: not wanted) */
    sm_cuda_block *gpu;         /* --device cuda: the block on the GPU */
    sm_hessian **eh[2];         /* SM_FEAT_MOE: per expert, its SM_IN_FFN / SM_IN_FFN_DOWN Hessian (NULL: not wanted) */
} capture;

static int observe(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                   int64_t n_tok) {
    capture *c = user;
    if (layer != c->layer || which >= SM_IN_COUNT) return 0;
    if (c->h[which]) {
        const double t0 = sm_now();
        if (sm_hessian_cols(c->h[which]) != cols) return sm_error("gptq: unexpected activation width %lld", (long long)cols);
        if (sm_hessian_add_feature_major(c->h[which], x, n_tok, ld)) return -1;
        if (c->absum[which]) {
            double *a = c->absum[which];
#pragma omp parallel for schedule(static) if (cols * n_tok >= (1 << 16))
            for (int64_t f = 0; f < cols; f++) {
                double acc = 0;
                for (int64_t t = 0; t < n_tok; t++) acc += fabs((double)x[f * ld + t]);
                a[f] += acc;
            }
        }
        c->seconds += sm_now() - t0;
    }
    return which == c->stop_at ? 1 : 0;
}

/* The expert observer: each expert's routed inputs into that expert's Hessian. */
static int observe_expert(void *user, int64_t layer, int64_t expert, sm_linear_input which, const float *x, int64_t ld,
                          int64_t cols, int64_t n_tok, const int32_t *tok, const float *weight) {
    (void)tok, (void)weight;
    capture *c = user;
    const int k = sm_expert_input(which);
    if (layer != c->layer || k < 0 || !c->eh[k]) return 0;
    const double t0 = sm_now();
    if (sm_hessian_cols(c->eh[k][expert]) != cols)
        return sm_error("gptq: unexpected expert activation width %lld", (long long)cols);
    const int rc = sm_hessian_add_feature_major(c->eh[k][expert], x, n_tok, ld);
    c->seconds += sm_now() - t0;
    return rc;
}

/* Round-to-nearest (with diag H as importance; H NULL: none, and no loss) into a result that
 * looks like GPTQ's. */
static int round_to_nearest(sm_type type, const double *H, const float *W, int64_t rows, int64_t cols, bool skip_loss,
                            sm_gptq_result *res) {
    memset(res, 0, sizeof *res);
    const uint64_t row_bytes = sm_type_row_bytes(type, cols);
    float *imp = H ? malloc(sizeof(float) * (size_t)cols) : NULL;
    res->packed = malloc((size_t)(row_bytes * (uint64_t)rows));
    res->deq = malloc(sizeof(float) * (size_t)(rows * cols));
    if ((H && !imp) || !res->packed || !res->deq) {
        free(imp);
        sm_gptq_result_free(res);
        return sm_error("out of memory");
    }
    for (int64_t c = 0; c < cols && H; c++) imp[c] = (float)H[c * cols + c];
    const bool plain = !sm_type_get(type)->quantized;
    int rc = 0;
    if (plain) rc = sm_f32_to_plain(type, W, res->packed, rows * cols);
    else if (sm_quantize_rows(type, W, res->packed, rows, cols, imp) == 0) rc = -1;
    for (int64_t r = 0; r < rows && !rc; r++)
        rc = sm_dequantize_row(type, (const char *)res->packed + (uint64_t)r * row_bytes, res->deq + r * cols, cols);
    free(imp);
    if (rc) {
        sm_gptq_result_free(res);
        return -1;
    }
    res->rows = rows;
    res->cols = cols;
    res->packed_bytes = (size_t)(row_bytes * (uint64_t)rows);
    if (!skip_loss && H) {
        if (sm_gptq_proxy_loss(H, cols, W, res->deq, rows, &res->loss_rtn)) {
            sm_gptq_result_free(res);
            return -1;
        }
        res->loss_gptq = res->loss_rtn;
    }
    return 0;
}

/* AutoAWQ's integer grid (sm_awq_int_quant) into a result that looks like GPTQ's (no g_idx:
 * groups are consecutive columns). */
static int awq_int_round(const sm_gptq_run_opts *o, const float *W, int64_t rows, int64_t cols, sm_gptq_result *res) {
    memset(res, 0, sizeof *res);
    const int64_t gs = o->q.group_size == -1 ? cols : o->q.group_size;
    const int64_t ng = gs > 0 && cols % gs == 0 ? cols / gs : 1;
    res->deq = malloc(sizeof(float) * (size_t)(rows * cols));
    res->codes = malloc((size_t)(rows * cols));
    res->scales = malloc(sizeof(uint16_t) * (size_t)(ng * rows));
    res->zeros = malloc(sizeof(int32_t) * (size_t)(ng * rows));
    int rc = !res->deq || !res->codes || !res->scales || !res->zeros ? sm_error("out of memory") : 0;
    if (!rc) rc = sm_awq_int_quant(W, rows, cols, o->q.bits, o->q.group_size, res->deq, res->codes, res->scales, res->zeros);
    if (rc) {
        sm_gptq_result_free(res);
        return -1;
    }
    res->rows = rows;
    res->cols = cols;
    res->n_groups = ng;
    return 0;
}

/* Run layer l over every sample (x: n_samples x seqlen x n_embd), stopped by the observer
 * (stop_at < SM_IN_COUNT) or to the end (x is then replaced by the block's outputs). */
/* The same pass on the GPU block (its weights are the current ones: quantized linears are
 * uploaded as they are done); the Hessian accumulation is part of the pass there. */
static int pass_gpu(const sm_model *m, capture *cap, float *x, const sm_calib_set *cs, sm_gptq_layer_report *lr) {
    const int64_t E = sm_model_hparams(m)->n_embd, L = cs->seqlen;
    const int stop = cap->stop_at < SM_IN_COUNT ? (int)cap->stop_at : -1;
    sm_cuda_syrk *dh[SM_CUDA_IN_COUNT] = {0};
    for (int i = 0; i < SM_CUDA_IN_COUNT; i++)
        if (cap->h[i] && !(dh[i] = sm_hessian_device(cap->h[i]))) return sm_error("gptq: a Hessian is not on the GPU");
    const double t0 = sm_now();
    for (int64_t s = 0; s < cs->n_samples; s++) {
        const int rc = sm_cuda_block_run(cap->gpu, x + s * L * E, L, stop, dh);
        if (rc < 0) return sm_error_ctx("gptq: layer %lld on the GPU", (long long)cap->layer);
        if (rc == 0 && stop >= 0) return sm_error("gptq: the block ended before its input was seen");
        for (int i = 0; i < SM_CUDA_IN_COUNT; i++)
            if (dh[i] && (stop < 0 || i <= stop)) sm_hessian_count(cap->h[i], L);
    }
    lr->seconds_forward += sm_now() - t0;
    return 0;
}

/* copy non-NULL (seqlen x n_embd floats): each sample runs on a copy there, to the block's end
 * (every expert observed), and x stays as it is. */
static int pass_on(const sm_model *m, sm_context *ctx, capture *cap, int64_t l, const sm_block_override *ov, float *x,
                   const sm_calib_set *cs, sm_gptq_layer_report *lr, float *copy) {
    const int64_t E = sm_model_hparams(m)->n_embd, L = cs->seqlen;
    if (cap->gpu) return pass_gpu(m, cap, x, cs, lr);
    const double t0 = sm_now(), h0 = cap->seconds;
    for (int64_t s = 0; s < cs->n_samples; s++) {
        if (copy) memcpy(copy, x + s * L * E, sizeof(float) * (size_t)(L * E));
        const int rc = sm_model_eval_block(m, ctx, l, ov, copy ? copy : x + s * L * E, L, 0);
        if (rc < 0) return -1;
        if (rc == 0 && cap->stop_at < SM_IN_COUNT) return sm_error("gptq: the block ended before its input was seen");
    }
    lr->seconds_hessian += cap->seconds - h0;
    lr->seconds_forward += sm_now() - t0 - (cap->seconds - h0);
    return 0;
}

static int pass(const sm_model *m, sm_context *ctx, capture *cap, int64_t l, const sm_block_override *ov, float *x,
                const sm_calib_set *cs, sm_gptq_layer_report *lr) {
    return pass_on(m, ctx, cap, l, ov, x, cs, lr, NULL);
}

static int quantize_linears(const sm_model *m, int64_t l, int g, const double *H, int64_t cols,
                            const sm_gptq_run_opts *o, float *const *W, sm_gptq_linear *lin, sm_gptq_layer_report *lr);

/* Linear i of the block is quantized: later passes use its quantized weights (on the GPU, they
 * replace the float ones in the device block). */
static int use_quantized(const sm_model *m, capture *cap, sm_block_override *ov, const sm_gptq_linear *lin,
                         sm_linear i, float *const *eff) {
    ov->w[i] = eff && eff[i] ? eff[i] : lin[i].res.deq; /* AWQ: in the original basis */
    if (cap->gpu && sm_model_cuda_block_set_linear(m, cap->layer, i, ov->w[i], cap->gpu))
        return sm_error_ctx("gptq: uploading the quantized %s", sm_linear_gguf_name(i));
    return 0;
}

/* Quantize group g's linears; their float weights are freed once quantized (memory). */
static int quantize_group(const sm_model *m, int64_t l, int g, const double *H, int64_t cols,
                          const sm_gptq_run_opts *o, float **W, sm_gptq_linear *lin, sm_gptq_layer_report *lr) {
    const double t0 = sm_now();
    const int rc = H ? quantize_linears(m, l, g, H, cols, o, W, lin, lr) : sm_error_ctx("layer %lld", (long long)l);
    for (int k = 0; k < GROUPS[g].n; k++) {
        free(W[GROUPS[g].lin[k]]);
        W[GROUPS[g].lin[k]] = NULL;
    }
    lr->seconds_quantize += sm_now() - t0;
    return rc;
}

/* One matrix: GPTQ on its type's grid against H (*hinv: H's factorization, made on first use,
 * shared by the matrices reading one input), or, without a grid or with allow_gptq false,
 * round-to-nearest with diag(H) as importance (H NULL: none). */
static int quantize_matrix(const double *H, int64_t cols, sm_type type, bool allow_gptq, const sm_gptq_run_opts *o,
                           sm_gptq_hinv **hinv, float *W, int64_t rows, bool *gptq, sm_gptq_result *res) {
    *gptq = allow_gptq && H && (type == SM_TYPE_INVALID || sm_gptq_has_grid(type)) && (!o->awq.enabled || o->awq.then_gptq);
    if (!*gptq && type == SM_TYPE_INVALID) return awq_int_round(o, W, rows, cols, res); /* AWQ into an AutoAWQ checkpoint */
    if (!*gptq) return round_to_nearest(type, H, W, rows, cols, o->q.skip_loss || o->awq.enabled, res);
    sm_gptq_opts q = o->q;
    q.skip_loss |= o->awq.enabled; /* AWQ reports its own loss against the unscaled weights */
    q.gguf_type = type;
    if (!*hinv && sm_gptq_prepare(H, cols, &q, hinv)) return -1;
    return sm_gptq_quantize(*hinv, W, rows, &q, res);
}

static int quantize_linears(const sm_model *m, int64_t l, int g, const double *H, int64_t cols,
                            const sm_gptq_run_opts *o, float *const *W, sm_gptq_linear *lin, sm_gptq_layer_report *lr) {
    sm_gptq_hinv *hinv = NULL;
    for (int k = 0; k < GROUPS[g].n; k++) {
        const sm_linear i = GROUPS[g].lin[k];
        int64_t rows, c;
        if (sm_model_linear_shape(m, l, i, &rows, &c)) return -1;
        sm_gptq_linear *li = &lin[i];
        li->type = o->types ? o->types[l * SM_LIN_COUNT + i] : SM_TYPE_INVALID;
        const int rc = quantize_matrix(H, cols, li->type, true, o, &hinv, W[i], rows, &li->gptq, &li->res);
        if (rc) {
            sm_gptq_hinv_free(hinv);
            return sm_error_ctx("blk.%lld.%s", (long long)l, sm_linear_gguf_name(i));
        }
        lr->type[i] = li->type;
        lr->gptq[i] = li->gptq;
        if (!o->awq.enabled) { /* AWQ's losses are set by awq_finish */
            lr->loss_rtn[i] = li->res.loss_rtn;
            lr->loss_gptq[i] = li->res.loss_gptq;
        }
    }
    sm_gptq_hinv_free(hinv);
    return 0;
}

/* ---- mixtures of experts (SM_FEAT_MOE): per-expert Hessians and results ---- */

static const sm_linear STACK_LIN[3] = {SM_LIN_GATE, SM_LIN_UP, SM_LIN_DOWN}; /* ffn_{gate,up,down}_exps */

typedef struct moe_state {
    int64_t n;                /* experts */
    sm_gptq_result *res[3];   /* per stack: n results */
    const float **deq[3];     /* per stack: the experts' quantized weights (the block override) */
    sm_hessian **h[2];        /* per input (SM_IN_FFN, SM_IN_FFN_DOWN): n Hessians */
    float *copy;              /* one sample's residual stream (passes that leave x as it is) */
} moe_state;

static void moe_hessians_free(moe_state *st) {
    for (int k = 0; k < 2; k++) {
        for (int64_t e = 0; st->h[k] && e < st->n; e++) sm_hessian_free(st->h[k][e]);
        free(st->h[k]);
        st->h[k] = NULL;
    }
}

static void moe_state_clear(moe_state *st) {
    moe_hessians_free(st);
    for (int s = 0; s < 3; s++) {
        for (int64_t e = 0; st->res[s] && e < st->n; e++) sm_gptq_result_free(&st->res[s][e]);
        if (st->res[s]) memset(st->res[s], 0, sizeof(sm_gptq_result) * (size_t)st->n);
        if (st->deq[s]) memset(st->deq[s], 0, sizeof(float *) * (size_t)st->n);
    }
}

static void moe_state_free(moe_state *st) {
    moe_state_clear(st);
    for (int s = 0; s < 3; s++) {
        free(st->res[s]);
        free((void *)st->deq[s]);
    }
    free(st->copy);
}

static int moe_state_init(const sm_model *m, const sm_calib_set *cs, moe_state *st) {
    const sm_hparams *hp = sm_model_hparams(m);
    st->n = hp->n_expert;
    for (int s = 0; s < 3; s++) {
        st->res[s] = calloc((size_t)st->n, sizeof *st->res[s]);
        st->deq[s] = calloc((size_t)st->n, sizeof *st->deq[s]);
        if (!st->res[s] || !st->deq[s]) return sm_error("out of memory");
    }
    st->copy = malloc(sizeof(float) * (size_t)(cs->seqlen * hp->n_embd));
    return st->copy ? 0 : sm_error("out of memory");
}

/* One pass over every sample (x unchanged) collecting the experts' Hessians of the inputs in
 * `want` (bit k: input k; 0 SM_IN_FFN, 1 SM_IN_FFN_DOWN). */
static int moe_collect(const sm_model *m, sm_context *ctx, capture *cap, int64_t l, const sm_block_override *ov,
                       float *x, const sm_calib_set *cs, moe_state *st, unsigned want, sm_gptq_layer_report *lr) {
    int64_t rows, cols[3];
    for (int s = 0; s < 3; s++)
        if (sm_model_expert_shape(m, s, &rows, &cols[s])) return -1;
    for (int k = 0; k < 2; k++) {
        if (!(want >> k & 1)) continue;
        if (!(st->h[k] = calloc((size_t)st->n, sizeof *st->h[k]))) return sm_error("out of memory");
        for (int64_t e = 0; e < st->n; e++)
            if (!(st->h[k][e] = sm_hessian_new(cols[k ? 2 : 0]))) return -1;
        cap->eh[k] = st->h[k];
    }
    cap->stop_at = SM_IN_COUNT;
    const int rc = pass_on(m, ctx, cap, l, ov, x, cs, lr, st->copy);
    cap->eh[0] = cap->eh[1] = NULL;
    return rc;
}

/* Quantize every expert's matrices that read input k against that expert's Hessian (a starved
 * expert: round-to-nearest with diag(H), or no importance without tokens). */
static int moe_quantize(const sm_model *m, int64_t l, int k, const sm_gptq_run_opts *o, moe_state *st,
                        sm_gptq_layer_report *lr) {
    const double t0 = sm_now();
    const int64_t min_tokens = o->moe_min_tokens > 0 ? o->moe_min_tokens : SM_GPTQ_MOE_MIN_TOKENS;
    float *W = NULL;
    int rc = 0;
    for (int64_t e = 0; e < st->n && !rc; e++) {
        sm_gptq_expert_report *er = &lr->experts[e];
        const int64_t tokens = sm_hessian_tokens(st->h[k][e]);
        const double *H = sm_hessian_matrix(st->h[k][e]);
        if (!H) return -1;
        if (k == 0) {
            er->tokens = tokens;
            er->starved = tokens < min_tokens;
        }
        sm_gptq_hinv *hinv = NULL;
        for (int s = k ? 2 : 0; s < (k ? 3 : 2) && !rc; s++) {
            int64_t rows, cols;
            rc = sm_model_expert_shape(m, s, &rows, &cols);
            if (!rc && !(W = malloc(sizeof(float) * (size_t)(rows * cols)))) rc = sm_error("out of memory");
            if (!rc) rc = sm_model_expert_f32(m, l, s, e, W);
            er->type[s] = o->types[l * SM_LIN_COUNT + STACK_LIN[s]];
            if (!rc) rc = quantize_matrix(tokens ? H : NULL, cols, er->type[s], !er->starved, o, &hinv, W, rows,
                                          &er->gptq[s], &st->res[s][e]);
            if (rc) sm_error_ctx("blk.%lld.%s_exps, expert %lld", (long long)l, sm_linear_gguf_name(STACK_LIN[s]),
                                 (long long)e);
            er->loss_rtn[s] = st->res[s][e].loss_rtn;
            er->loss_gptq[s] = st->res[s][e].loss_gptq;
            st->deq[s][e] = st->res[s][e].deq;
            free(W);
            W = NULL;
        }
        sm_gptq_hinv_free(hinv);
    }
    lr->seconds_quantize += sm_now() - t0;
    return rc;
}

/* A block's experts, after its attention: true-sequential, gate/up against the inputs with the
 * quantized attention, then down against the intermediate activations of the quantized gate/up
 * (no_true_sequential: both from one pass with the original weights). ov then replaces them all. */
static int moe_block(const sm_model *m, sm_context *ctx, capture *cap, int64_t l, sm_block_override *ov, float *x,
                     const sm_calib_set *cs, const sm_gptq_run_opts *o, moe_state *st, sm_gptq_layer_report *lr) {
    lr->n_expert = st->n;
    if (!(lr->experts = calloc((size_t)st->n, sizeof *lr->experts))) return sm_error("out of memory");
    int rc;
    if (o->no_true_sequential) {
        rc = moe_collect(m, ctx, cap, l, NULL, x, cs, st, 3u, lr);
        if (!rc) rc = moe_quantize(m, l, 0, o, st, lr);
        if (!rc) rc = moe_quantize(m, l, 1, o, st, lr);
    } else {
        rc = moe_collect(m, ctx, cap, l, ov, x, cs, st, 1u, lr);
        if (!rc) rc = moe_quantize(m, l, 0, o, st, lr);
        ov->exps[0] = st->deq[0];
        ov->exps[1] = st->deq[1];
        if (!rc) rc = moe_collect(m, ctx, cap, l, ov, x, cs, st, 2u, lr);
        if (!rc) rc = moe_quantize(m, l, 1, o, st, lr);
    }
    moe_hessians_free(st);
    /* the stacks in the linears' report: their type, GPTQ if any expert had it, losses summed */
    for (int s = 0; s < 3; s++) {
        ov->exps[s] = st->deq[s];
        const sm_linear i = STACK_LIN[s];
        lr->type[i] = o->types[l * SM_LIN_COUNT + i];
        for (int64_t e = 0; e < st->n; e++) {
            lr->gptq[i] |= lr->experts[e].gptq[s];
            lr->loss_rtn[i] += lr->experts[e].loss_rtn[s];
            lr->loss_gptq[i] += lr->experts[e].loss_gptq[s];
        }
    }
    return rc;
}

/* ---- AWQ (calib.h): the per-block state and steps ---- */

typedef struct awq_layer {
    float *s[N_GROUPS];        /* each group's column scales; NULL: not scaled */
    double *Hs[N_GROUPS];      /* the Hessians of the scaled inputs from the AWQ pass */
    float *W0[SM_LIN_COUNT];   /* the original weights (for the loss report) */
    float *eff[SM_LIN_COUNT];  /* the quantized weights in the original basis (later passes) */
} awq_layer;

static void awq_layer_free(awq_layer *a) {
    for (int g = 0; g < N_GROUPS; g++) {
        free(a->s[g]);
        free(a->Hs[g]);
    }
    for (int i = 0; i < SM_LIN_COUNT; i++) {
        free(a->W0[i]);
        free(a->eff[i]);
    }
    memset(a, 0, sizeof *a);
}

static int group_of(sm_linear i) {
    for (int g = 0; g < N_GROUPS; g++)
        for (int k = 0; k < GROUPS[g].n; k++)
            if (GROUPS[g].lin[k] == i) return g;
    return -1;
}
/* the group whose scales divide linear i's rows (v feeds o, up feeds down), or -1 */
static int row_group_of(sm_linear i) { return i == SM_LIN_V ? 1 : i == SM_LIN_UP ? 3 : -1; }

/* H / (s s^T), a new matrix (s NULL: a copy). */
static double *scaled_hessian(const double *H, int64_t cols, const float *s) {
    double *r = malloc(sizeof(double) * (size_t)(cols * cols));
    if (!r) return NULL;
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = 0; b < cols; b++)
            r[a * cols + b] = s ? H[a * cols + b] / ((double)s[a] * s[b]) : H[a * cols + b];
    return r;
}

/* One pass of the block as it is collects every input's Hessian and mean |x| (with a GPU block,
 * on the GPU: the pass, the Hessians and the |x| sums; the searches below run on the CPU); the
 * scales are searched, folded into the weights W (columns; v's and up's rows), then the clips. */
static int awq_prepare(const sm_model *m, sm_context *ctx, capture *cap, int64_t l, float *x, const sm_calib_set *cs,
                       const sm_gptq_run_opts *o, float **W, awq_layer *A, sm_gptq_layer_report *lr) {
    sm_hessian *h[N_GROUPS] = {0};
    double *absum[N_GROUPS] = {0}, *xmean = NULL;
    sm_awq_opts ao = o->awq; /* an HF target's integer grid: the GPTQ options' */
    ao.int_bits = o->q.bits;
    ao.int_group = o->q.group_size;
    int64_t rows[SM_LIN_COUNT], cols[SM_LIN_COUNT];
    int rc = 0;
    for (int i = 0; i < SM_LIN_COUNT && !rc; i++) {
        rc = sm_model_linear_shape(m, l, (sm_linear)i, &rows[i], &cols[i]);
        if (!rc && !(A->W0[i] = malloc(sizeof(float) * (size_t)(rows[i] * cols[i])))) rc = sm_error("out of memory");
        if (!rc) memcpy(A->W0[i], W[i], sizeof(float) * (size_t)(rows[i] * cols[i]));
    }
    for (int g = 0; g < N_GROUPS && !rc; g++) {
        const int64_t c = cols[GROUPS[g].lin[0]];
        /* --device cuda: the Hessians and the |x| sums are accumulated on the GPU (pass_gpu) */
        h[g] = cap->h[GROUPS[g].in] = sm_hessian_new_on(c, o->q.device);
        if (!h[g]) rc = -1;
        else if (!cap->gpu && !(absum[g] = cap->absum[GROUPS[g].in] = calloc((size_t)c, sizeof(double))))
            rc = sm_error("out of memory");
    }
    cap->stop_at = SM_IN_FFN_DOWN;
    if (!rc) rc = pass(m, ctx, cap, l, NULL, x, cs, lr);
    memset(cap->h, 0, sizeof cap->h);
    memset(cap->absum, 0, sizeof cap->absum);
    const double t0 = sm_now();
    for (int g = 0; g < N_GROUPS && !rc; g++) {
        const sm_linear first = GROUPS[g].lin[0];
        const int64_t c = cols[first];
        const double *H = sm_hessian_matrix(h[g]);
        const double *abs_sum = cap->gpu ? sm_hessian_device_abs_sums(h[g]) : absum[g];
        if (!H || !abs_sum) {
            rc = sm_error_ctx("layer %lld", (long long)l);
            break;
        }
        sm_awq_group grp = {.n = GROUPS[g].n};
        for (int k = 0; k < grp.n; k++) {
            const sm_linear i = GROUPS[g].lin[k];
            grp.W[k] = W[i];
            grp.rows[k] = rows[i];
            grp.type[k] = o->types ? o->types[l * SM_LIN_COUNT + i] : SM_TYPE_INVALID;
        }
        /* o: v's rows must be o's columns one to one (no grouped-query sharing) */
        const bool scalable = g != 1 || rows[SM_LIN_V] == cols[SM_LIN_O];
        lr->awq_alpha[g] = -1;
        if (scalable) {
            const double n_tok = (double)sm_hessian_tokens(h[g]);
            xmean = malloc(sizeof(double) * (size_t)c);
            A->s[g] = malloc(sizeof(float) * (size_t)c);
            if (!xmean || !A->s[g]) {
                rc = sm_error("out of memory");
                break;
            }
            for (int64_t j = 0; j < c; j++) xmean[j] = n_tok > 0 ? abs_sum[j] / n_tok : 0;
            sm_awq_search_report sr;
            rc = sm_awq_search_scale(H, xmean, c, &grp, &ao, A->s[g], &sr);
            free(xmean);
            xmean = NULL;
            if (rc) {
                sm_error_ctx("blk.%lld: AWQ scale search of %s", (long long)l, sm_linear_gguf_name(first));
                break;
            }
            lr->awq_alpha[g] = sr.alpha;
            for (int k = 0; k < grp.n; k++) lr->loss_rtn[GROUPS[g].lin[k]] = sr.loss_lin_alpha0[k];
        } else {
            /* not scaled: round-to-nearest's loss for the report */
            for (int k = 0; k < grp.n && !rc; k++) {
                float *deq = malloc(sizeof(float) * (size_t)(rows[first] * c)), *imp = malloc(sizeof(float) * (size_t)c);
                if (!deq || !imp) rc = sm_error("out of memory");
                for (int64_t j = 0; j < c && !rc; j++) imp[j] = (float)H[j * c + j];
                if (!rc) rc = sm_awq_grid_quant(&ao, grp.type[k], grp.W[k], grp.rows[k], c, imp, deq);
                if (!rc) rc = sm_gptq_proxy_loss(H, c, grp.W[k], deq, grp.rows[k], &lr->loss_rtn[GROUPS[g].lin[k]]);
                free(deq);
                free(imp);
            }
        }
        if (!rc && !(A->Hs[g] = scaled_hessian(H, c, A->s[g]))) rc = sm_error("out of memory");
    }
    /* fold: columns of each group's linears times s; v's rows / s(o), up's rows / s(down) */
    for (int i = 0; i < SM_LIN_COUNT && !rc; i++) {
        const float *cs_ = A->s[group_of((sm_linear)i)];
        const int rg = row_group_of((sm_linear)i);
        const float *rs = rg >= 0 ? A->s[rg] : NULL;
        for (int64_t r = 0; r < rows[i]; r++)
            for (int64_t c = 0; c < cols[i]; c++) {
                float v = W[i][r * cols[i] + c];
                if (cs_) v *= cs_[c];
                if (rs) v /= rs[r];
                W[i][r * cols[i] + c] = v;
            }
    }
    for (int i = 0; i < SM_LIN_COUNT && !rc && !o->awq.no_clip; i++) {
        const sm_type t = o->types ? o->types[l * SM_LIN_COUNT + i] : SM_TYPE_INVALID;
        if (i == SM_LIN_Q || i == SM_LIN_K || (t != SM_TYPE_INVALID && !sm_type_get(t)->quantized)) continue;
        if (sm_awq_clip(A->Hs[group_of((sm_linear)i)], cols[i], W[i], rows[i], t, &ao))
            rc = sm_error_ctx("blk.%lld.%s: AWQ clip search", (long long)l, sm_linear_gguf_name((sm_linear)i));
    }
    lr->seconds_awq += sm_now() - t0;
    for (int g = 0; g < N_GROUPS; g++) {
        sm_hessian_free(h[g]);
        free(absum[g]);
    }
    free(xmean);
    return rc;
}

/* After group g is quantized (against Hs, the Hessian of its scaled inputs): its linears' weights
 * in the original basis for the later passes, the scales for the writer, the loss report. */
static int awq_finish(int g, const double *Hs, awq_layer *A, sm_gptq_linear *lin, const sm_gptq_run_opts *o,
                      sm_gptq_layer_report *lr) {
    for (int k = 0; k < GROUPS[g].n; k++) {
        const sm_linear i = GROUPS[g].lin[k];
        sm_gptq_result *r = &lin[i].res;
        const int64_t rows = r->rows, cols = r->cols;
        const int rg = row_group_of(i);
        const float *cs_ = A->s[g], *rs = rg >= 0 ? A->s[rg] : NULL;
        lin[i].awq_col_scale = cs_;
        lin[i].awq_row_scale = rs;
        float *e = A->eff[i] = malloc(sizeof(float) * (size_t)(rows * cols));
        float *ws = malloc(sizeof(float) * (size_t)(rows * cols)), *qs = malloc(sizeof(float) * (size_t)(rows * cols));
        if (!e || !ws || !qs) {
            free(ws);
            free(qs);
            return sm_error("out of memory");
        }
        /* loss in the basis of the scaled inputs, outputs unscaled: (W diag s) vs diag(rs) deq */
        for (int64_t a = 0; a < rows; a++)
            for (int64_t c = 0; c < cols; c++) {
                const float d = r->deq[a * cols + c] * (rs ? rs[a] : 1.0f);
                qs[a * cols + c] = d;
                ws[a * cols + c] = A->W0[i][a * cols + c] * (cs_ ? cs_[c] : 1.0f);
                e[a * cols + c] = cs_ ? d / cs_[c] : d;
            }
        int rc = 0;
        if (!o->q.skip_loss) rc = sm_gptq_proxy_loss(Hs, cols, ws, qs, rows, &lr->loss_gptq[i]);
        free(ws);
        free(qs);
        if (rc) return -1;
    }
    return 0;
}

int sm_gptq_run(const sm_model *m, const sm_calib_set *cs, const sm_gptq_run_opts *o, sm_gptq_run_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t_start = sm_now();
    const sm_hparams *hp = sm_model_hparams(m);
    const int64_t E = hp->n_embd, L = cs->seqlen, S = cs->n_samples, n_layer = hp->n_layer;
    if (S < 1 || L < 2) return sm_error("gptq: no calibration samples");
    if (o->awq.enabled && !o->types && o->awq.then_gptq)
        return sm_error("awq: AWQ + GPTQ into a Hugging Face checkpoint (--to hf) is not supported; use --to gguf:RECIPE");
    const bool moe = (hp->features & SM_FEAT_MOE) != 0;
    if (moe && (o->awq.enabled || o->q.device == SM_DEVICE_CUDA || !o->types))
        return sm_error("gptq: a mixture of experts is quantized on the CPU, by GPTQ alone, into a GGUF (%s is not "
                        "supported for it)",
                        o->awq.enabled ? "AWQ" : o->q.device == SM_DEVICE_CUDA ? "--device cuda" : "--to hf");
    /* the linears held as floats: a mixture of experts' FFN is its expert stacks (moe_block) */
    const int n_lin = moe ? SM_LIN_GATE : SM_LIN_COUNT, n_groups = moe ? 2 : N_GROUPS;
    moe_state st = {0};
    const uint64_t act_floats = (uint64_t)S * (uint64_t)L * (uint64_t)E;
    if (act_floats > ((uint64_t)1 << 40)) return sm_error("gptq: %lld samples of %lld tokens are too many", (long long)S, (long long)L);
    rep->n_layer = n_layer;
    rep->n_samples = S;
    rep->seqlen = L;
    rep->activation_bytes = act_floats * sizeof(float);
    rep->layers = calloc((size_t)n_layer, sizeof *rep->layers);
    float *x = malloc(sizeof(float) * (size_t)act_floats);
    float *W[SM_LIN_COUNT] = {0};
    sm_gptq_linear lin[SM_LIN_COUNT];
    memset(lin, 0, sizeof lin);
    sm_context *ctx = NULL;
    capture cap = {0};
    int rc = -1;
    if (!rep->layers || !x) {
        sm_error("gptq: out of memory for the activations of %lld samples x %lld tokens (%.1f MiB)", (long long)S,
                 (long long)L, (double)rep->activation_bytes / 1048576.0);
        goto done;
    }
    for (int64_t s = 0; s < S; s++)
        if (sm_model_embed(m, cs->tokens + s * L, L, x + s * L * E)) goto done;
    sm_model_release_layer(m, -1); /* memory: the mapped weights are resident one block at a time */
    if (o->q.device == SM_DEVICE_CUDA) {
        if (sm_model_cuda_block_new(m, L, &cap.gpu)) goto done;
    } else if (sm_context_new_block(m, L, L, &ctx) || sm_context_set_observer(ctx, observe, &cap) ||
               (moe && (sm_context_set_expert_observer(ctx, observe_expert, &cap) || moe_state_init(m, cs, &st)))) {
        goto done;
    }

    for (int64_t l = 0; l < n_layer; l++) {
        const double t0 = sm_now();
        sm_gptq_layer_report *lr = &rep->layers[l];
        sm_block_override ov = {{0}, {0}};
        if (sm_model_prepare_layer(m, l)) goto done;
        for (int i = 0; i < n_lin; i++) {
            int64_t rows, cols;
            free(W[i]);
            if (sm_model_linear_shape(m, l, (sm_linear)i, &rows, &cols)) goto done;
            if (!(W[i] = malloc(sizeof(float) * (size_t)(rows * cols)))) {
                sm_error("out of memory");
                goto done;
            }
            if (sm_model_linear_f32(m, l, (sm_linear)i, W[i])) goto done;
        }
        if (cap.gpu && sm_model_cuda_block_load(m, l, cap.gpu, (const float *const *)W)) goto done;
        cap.layer = l;
        sm_hessian *h[N_GROUPS] = {0};
        awq_layer A;
        memset(&A, 0, sizeof A);
        int lrc = 0;
        if (o->awq.enabled) lrc = awq_prepare(m, ctx, &cap, l, x, cs, o, W, &A, lr);
        if (lrc) {
        } else if (o->awq.enabled && (!o->awq.then_gptq || o->no_true_sequential)) {
            /* the AWQ pass's Hessians (of the block as it was) serve every group */
            for (int g = 0; g < N_GROUPS && !lrc; g++) {
                int64_t rows, cols;
                lrc = sm_model_linear_shape(m, l, GROUPS[g].lin[0], &rows, &cols);
                if (!lrc) lrc = quantize_group(m, l, g, A.Hs[g], cols, o, W, lin, lr);
                if (!lrc) lrc = awq_finish(g, A.Hs[g], &A, lin, o, lr);
                for (int k = 0; k < GROUPS[g].n && !lrc; k++) lrc = use_quantized(m, &cap, &ov, lin, GROUPS[g].lin[k], A.eff);
            }
        } else if (o->no_true_sequential) {
            /* one pass with the original weights collects every input, stopping before down
             * (a mixture of experts: before the router) */
            for (int g = 0; g < n_groups && !lrc; g++) {
                int64_t rows, cols;
                lrc = sm_model_linear_shape(m, l, GROUPS[g].lin[0], &rows, &cols);
                if (!lrc && !(h[g] = cap.h[GROUPS[g].in] = sm_hessian_new_on(cols, o->q.device))) lrc = -1;
            }
            cap.stop_at = moe ? SM_IN_FFN : SM_IN_FFN_DOWN;
            if (!lrc) lrc = pass(m, ctx, &cap, l, NULL, x, cs, lr);
            for (int g = 0; g < n_groups && !lrc; g++)
                lrc = quantize_group(m, l, g, sm_hessian_matrix(h[g]), sm_hessian_cols(h[g]), o, W, lin, lr);
            for (int i = 0; i < n_lin && !lrc; i++) lrc = use_quantized(m, &cap, &ov, lin, (sm_linear)i, NULL);
        } else {
            for (int g = 0; g < n_groups && !lrc; g++) {
                int64_t rows, cols;
                lrc = sm_model_linear_shape(m, l, GROUPS[g].lin[0], &rows, &cols);
                if (!lrc && !(h[g] = cap.h[GROUPS[g].in] = sm_hessian_new_on(cols, o->q.device))) lrc = -1;
                cap.stop_at = GROUPS[g].in;
                if (!lrc) lrc = pass(m, ctx, &cap, l, &ov, x, cs, lr);
                cap.h[GROUPS[g].in] = NULL;
                const double *H = lrc ? NULL : sm_hessian_matrix(h[g]);
                if (!lrc && o->awq.enabled) {
                    /* AWQ + GPTQ: the Hessian of the scaled inputs */
                    double *Hs = H ? scaled_hessian(H, cols, A.s[g]) : NULL;
                    lrc = quantize_group(m, l, g, Hs, cols, o, W, lin, lr);
                    if (!lrc) lrc = awq_finish(g, Hs, &A, lin, o, lr);
                    free(Hs);
                } else if (!lrc) {
                    lrc = quantize_group(m, l, g, H, cols, o, W, lin, lr);
                }
                for (int k = 0; k < GROUPS[g].n && !lrc; k++)
                    lrc = use_quantized(m, &cap, &ov, lin, GROUPS[g].lin[k], A.eff);
                sm_hessian_free(h[g]);
                h[g] = NULL;
            }
        }
        for (int g = 0; g < N_GROUPS; g++) sm_hessian_free(h[g]);
        memset(cap.h, 0, sizeof cap.h);
        if (!lrc && moe) {
            lrc = moe_block(m, ctx, &cap, l, &ov, x, cs, o, &st, lr);
            for (int s = 0; s < 3; s++) {
                lin[STACK_LIN[s]].type = o->types[l * SM_LIN_COUNT + STACK_LIN[s]];
                lin[STACK_LIN[s]].experts = st.res[s];
            }
        }
        if (lrc) {
            awq_layer_free(&A);
            goto done;
        }
        /* the quantized block's outputs are the next block's inputs */
        cap.stop_at = SM_IN_COUNT;
        const int prc = pass(m, ctx, &cap, l, &ov, x, cs, lr);
        const int src = prc ? -1 : o->sink ? o->sink(o->sink_user, l, lin) : 0;
        awq_layer_free(&A);
        moe_state_clear(&st);
        if (prc || src) goto done;
        sm_model_release_layer(m, l);
        for (int i = 0; i < SM_LIN_COUNT; i++) {
            sm_gptq_result_free(&lin[i].res);
            lin[i].awq_col_scale = lin[i].awq_row_scale = NULL;
        }
        lr->seconds = sm_now() - t0;
        if (o->on_layer) o->on_layer(o->on_layer_user, l, n_layer, lr);
    }
    rc = 0;
done:
    for (int i = 0; i < SM_LIN_COUNT; i++) {
        sm_gptq_result_free(&lin[i].res);
        free(W[i]);
    }
    sm_context_free(ctx);
    sm_cuda_block_free(cap.gpu);
    moe_state_free(&st);
    free(x);
    rep->seconds = sm_now() - t_start;
    if (rc) sm_gptq_run_report_free(rep);
    return rc;
}

void sm_gptq_run_report_free(sm_gptq_run_report *r) {
    for (int64_t l = 0; r->layers && l < r->n_layer; l++) free(r->layers[l].experts);
    free(r->layers);
    memset(r, 0, sizeof *r);
}

/* moe.c - the mixture-of-experts FFN of a decoder block (SM_FEAT_MOE: Mixtral, Qwen3-MoE) on the CPU,
 * in llama.cpp's order of operations (llm_graph_context::build_moe_ffn with softmax gating and
 * norm_w, as its llama and qwen3moe graphs call it):
 *   logits = ffn_gate_inp . x; probs = softmax(logits) (exp in float, the sum in double, then one
 *   float scale); the n_expert_used most probable experts, most probable first (ties: the lower
 *   expert number; llama.cpp's sort leaves ties unspecified); their weights renormalised: divided by
 *   their float sum clamped below at 6.103515625e-5; each chosen expert's
 *   down(silu(gate(x)) * up(x)) times its weight; the weighted outputs summed slot by slot (slot 0
 *   first), then added to the residual.
 * Every expert runs once per batch on the tokens routed to it, gathered into one matrix product,
 * so the work is that of n_expert_used dense FFNs per token. Element-wise work never mixes tokens:
 * results do not depend on the thread count. */
#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *xalloc(size_t n, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * size)) return NULL;
    return p;
}

int sm_moe_context_alloc(sm_context *c) {
    const sm_hparams *hp = &c->m->hp;
    if (!(hp->features & SM_FEAT_MOE)) return 0;
    const size_t ld = (size_t)c->ld, NE = (size_t)hp->n_expert, K = (size_t)hp->n_expert_used, E = (size_t)hp->n_embd;
    c->router = xalloc(NE * ld, sizeof(float));
    c->xe = xalloc(E * ld, sizeof(float));
    c->slots = xalloc(K * E * ld, sizeof(float));
    c->sel_w = xalloc(K * ld, sizeof(float));
    c->sel = xalloc(K * ld, sizeof(int32_t));
    c->e_w = xalloc(ld, sizeof(float));
    c->e_tok = xalloc(ld, sizeof(int32_t));
    c->e_slot = xalloc(ld, sizeof(int32_t));
    return c->router && c->xe && c->slots && c->sel_w && c->sel && c->e_w && c->e_tok && c->e_slot ? 0 : -1;
}

void sm_moe_context_free(sm_context *c) {
    void *bufs[] = {c->router, c->xe, c->slots, c->sel_w, c->sel, c->e_w, c->e_tok, c->e_slot};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

int sm_context_set_expert_observer(sm_context *c, sm_expert_observer_fn fn, void *user) {
    if (c->cuda && fn) return sm_error("activation observers need a CPU context");
    c->eobs = fn;
    c->eobs_user = user;
    return 0;
}

int sm_expert_input(sm_linear_input which) { return which == SM_IN_FFN ? 0 : which == SM_IN_FFN_DOWN ? 1 : -1; }

int sm_model_expert_shape(const sm_model *m, int stack, int64_t *rows, int64_t *cols) {
    const sm_hparams *hp = &m->hp;
    if (!(hp->features & SM_FEAT_MOE)) return sm_error("the model has no experts");
    if (stack < 0 || stack > 2) return sm_error("no expert stack %d", stack);
    *rows = stack == 2 ? hp->n_embd : hp->n_ff_exp;
    *cols = stack == 2 ? hp->n_ff_exp : hp->n_embd;
    return 0;
}

int sm_model_expert_f32(const sm_model *m, int64_t layer, int stack, int64_t expert, float *dst) {
    int64_t rows = 0, cols = 0;
    if (sm_model_expert_shape(m, stack, &rows, &cols)) return -1;
    if (layer < 0 || layer >= m->hp.n_layer || expert < 0 || expert >= m->hp.n_expert)
        return sm_error("layer %lld expert %lld out of range", (long long)layer, (long long)expert);
    const sm_layer_weights *L = &m->layers[layer];
    const sm_weight *w = (stack == 0 ? L->gate_exps : stack == 1 ? L->up_exps : L->down_exps) + expert;
    if (!w->data) return sm_error("layer %lld: weights not prepared (sm_model_prepare_layer)", (long long)layer);
    for (int64_t r = 0; r < rows; r++)
        if (sm_row_to_f32(w->type, (const char *)w->data + (size_t)r * w->stride, dst + r * cols, cols)) return -1;
    return 0;
}

/* The layer's expert stacks with ov's replacements (F32) in *tmp (3 x n_expert, malloc'ed). */
int sm_moe_override(const sm_model *m, sm_layer_weights *L, const sm_block_override *ov, sm_weight **tmp) {
    *tmp = NULL;
    if (!ov || !(m->hp.features & SM_FEAT_MOE) || (!ov->exps[0] && !ov->exps[1] && !ov->exps[2])) return 0;
    const int64_t NE = m->hp.n_expert;
    sm_weight *w = malloc(sizeof *w * (size_t)(3 * NE));
    if (!w) return sm_error("out of memory");
    sm_weight **stacks[3] = {&L->gate_exps, &L->up_exps, &L->down_exps};
    for (int k = 0; k < 3; k++) {
        for (int64_t e = 0; e < NE; e++) {
            w[k * NE + e] = (*stacks[k])[e];
            if (ov->exps[k] && ov->exps[k][e])
                w[k * NE + e] = (sm_weight){SM_TYPE_F32, ov->exps[k][e], sizeof(float) * (size_t)w[k * NE + e].cols,
                                            w[k * NE + e].rows, w[k * NE + e].cols};
        }
        *stacks[k] = w + k * NE;
    }
    *tmp = w;
    return 0;
}

/* Token t's experts and weights (router probabilities of the batch in c->router, column t). */
static void route(sm_context *c, int64_t t) {
    const sm_hparams *hp = &c->m->hp;
    const int64_t NE = hp->n_expert, K = hp->n_expert_used, ld = c->ld;
    float *p = c->router + t; /* p[e * ld] */
    float mx = -INFINITY;
    for (int64_t e = 0; e < NE; e++) mx = p[e * ld] > mx ? p[e * ld] : mx;
    double sum = 0;
    for (int64_t e = 0; e < NE; e++) {
        const float v = expf(p[e * ld] - mx);
        p[e * ld] = v;
        sum += (double)v;
    }
    const float scale = (float)(1.0 / sum);
    for (int64_t e = 0; e < NE; e++) p[e * ld] *= scale;
    int32_t *sel = c->sel + t * K;
    float *w = c->sel_w + t * K;
    float wsum = 0;
    for (int64_t j = 0; j < K; j++) {
        int64_t best = -1;
        for (int64_t e = 0; e < NE; e++) {
            bool taken = false;
            for (int64_t i = 0; i < j && !taken; i++) taken = sel[i] == e;
            if (!taken && (best < 0 || p[e * ld] > p[best * ld])) best = e;
        }
        sel[j] = (int32_t)best;
        w[j] = p[best * ld];
        wsum += w[j];
    }
    if (wsum < 6.103515625e-5f) wsum = 6.103515625e-5f; /* llama.cpp's clamp (the smallest normal f16) */
    for (int64_t j = 0; j < K; j++) w[j] /= wsum;
}

static int matmul(const sm_context *c, const sm_weight *w, const float *x, int64_t n, float *y) {
    const sm_matmul_op op = {w->type, w->data, w->stride, w->rows, y, c->ld, false, c->int_dot};
    return sm_matmul_many(&op, 1, w->cols, x, c->ld, n);
}

int sm_moe_ffn(sm_context *c, const sm_layer_weights *L, int64_t l, const float *xn, float *x, int64_t n) {
    const sm_hparams *hp = &c->m->hp;
    const int64_t NE = hp->n_expert, K = hp->n_expert_used, E = hp->n_embd, F = hp->n_ff_exp, ld = c->ld;
    if (n <= 0) return 0;
    if (matmul(c, &L->gate_inp, xn, n, c->router)) return -1;
    for (int64_t t = 0; t < n; t++) route(c, t);
    int rc;
    for (int64_t e = 0; e < NE; e++) {
        int64_t ne = 0; /* the tokens routed to e, in order, with their slot and weight */
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < K; j++)
                if (c->sel[t * K + j] == e) {
                    c->e_tok[ne] = (int32_t)t;
                    c->e_slot[ne] = (int32_t)j;
                    c->e_w[ne++] = c->sel_w[t * K + j];
                }
        if (!ne) continue;
        for (int64_t f = 0; f < E; f++)
            for (int64_t i = 0; i < ne; i++) c->xe[f * ld + i] = xn[f * ld + c->e_tok[i]];
        if (c->eobs && (rc = c->eobs(c->eobs_user, l, e, SM_IN_FFN, c->xe, ld, E, ne, c->e_tok, c->e_w))) return rc;
        const sm_matmul_op ops[2] = {{L->gate_exps[e].type, L->gate_exps[e].data, L->gate_exps[e].stride, F, c->gate, ld, false, c->int_dot},
                                     {L->up_exps[e].type, L->up_exps[e].data, L->up_exps[e].stride, F, c->up, ld, false, c->int_dot}};
        if (sm_matmul_many(ops, 2, E, c->xe, ld, ne)) return -1;
        for (int64_t f = 0; f < F; f++) sm_vec_silu_mul(c->gate + f * ld, c->up + f * ld, ne);
        if (c->eobs && (rc = c->eobs(c->eobs_user, l, e, SM_IN_FFN_DOWN, c->gate, ld, F, ne, c->e_tok, c->e_w))) return rc;
        if (matmul(c, &L->down_exps[e], c->gate, ne, c->xe)) return -1;
        for (int64_t f = 0; f < E; f++)
            for (int64_t i = 0; i < ne; i++)
                c->slots[((int64_t)c->e_slot[i] * E + f) * ld + c->e_tok[i]] = c->xe[f * ld + i] * c->e_w[i];
    }
    for (int64_t f = 0; f < E; f++)
        for (int64_t t = 0; t < n; t++) {
            float s = c->slots[f * ld + t];
            for (int64_t j = 1; j < K; j++) s += c->slots[(j * E + f) * ld + t];
            x[f * ld + t] += s;
        }
    return 0;
}

/* block_desc.c - the decoder block as data (kernels.h sm_block_desc), built once from the
 * architecture table's feature flags (hp->features) and the hyperparameters: the sequence of
 * operations with their buffers and tensor roles. The CPU block (model/forward.c), the CUDA
 * forward and the CUDA calibration pass (kernels/cuda/block_exec.cu) all execute it; a new
 * block feature is a step here plus its operation in each executor. */
#include "runtime_internal.h"

#include "arch_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct builder {
    sm_block_desc *d;
} builder;

static void emit(builder *b, sm_block_opcode op, int src, int n_out, const int *dst, const int *w, const int *bias) {
    sm_block_op *o = &b->d->ops[b->d->n_ops++];
    memset(o, 0, sizeof *o);
    o->op = (uint8_t)op;
    o->src = (uint8_t)src;
    o->n_out = (uint8_t)n_out;
    for (int i = 0; i < 3; i++) {
        o->dst[i] = (uint8_t)(i < n_out ? dst[i] : 0);
        o->w[i] = (uint8_t)(i < n_out && w ? w[i] : SM_ROLE_NONE);
        o->b[i] = (uint8_t)(i < n_out && bias ? bias[i] : SM_ROLE_NONE);
    }
}

static void norm(builder *b, int src, int dst, int w) { emit(b, SM_OP_NORM, src, 1, &dst, &w, NULL); }

static void observe(builder *b, int src, sm_linear_input in) {
    emit(b, SM_OP_OBSERVE, src, 0, NULL, NULL, NULL);
    b->d->ops[b->d->n_ops - 1].in = (uint8_t)in;
}

static void linear(builder *b, int src, int n_out, const int *dst, const int *w, const int *bias, bool accumulate) {
    emit(b, SM_OP_LINEAR, src, n_out, dst, w, bias);
    b->d->ops[b->d->n_ops - 1].accumulate = accumulate;
}

static void simple(builder *b, sm_block_opcode op, int src, int dst) { emit(b, op, src, 1, &dst, NULL, NULL); }

/* a sublayer's output projection into the residual stream: x += W src (+ bias), or with
 * post-norms x += norm(W src + bias) */
static void residual(builder *b, int src, int w, int bias, int post_norm) {
    if (post_norm == SM_ROLE_NONE) {
        linear(b, src, 1, (const int[]){SM_BUF_X}, &w, &bias, true);
        return;
    }
    linear(b, src, 1, (const int[]){SM_BUF_XN}, &w, &bias, false);
    norm(b, SM_BUF_XN, SM_BUF_XN, post_norm);
    simple(b, SM_OP_ADD, SM_BUF_XN, SM_BUF_X);
}

void sm_block_desc_build(const sm_model *m, sm_block_desc *d) {
    const sm_hparams *hp = &m->hp;
    const unsigned f = hp->features;
    memset(d, 0, sizeof *d);
    builder b = {d};
    const bool post = f & SM_FEAT_POST_NORMS;

    d->rows[SM_BUF_X] = d->rows[SM_BUF_XN] = hp->n_embd;
    d->rows[SM_BUF_Q] = d->rows[SM_BUF_ATT] = m->q_dim;
    d->rows[SM_BUF_K] = d->rows[SM_BUF_V] = m->kv_dim;
    d->rows[SM_BUF_GATE] = d->rows[SM_BUF_UP] = hp->n_ff;
    d->n_head = hp->n_head;
    d->n_head_kv = hp->n_head_kv;
    d->head_dim = m->head_dim;
    d->n_rot = m->n_rot;
    d->rope_neox = m->rope == SM_ROPE_NEOX;
    d->rms_eps = hp->rms_eps;
    d->attn_scale = hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)m->head_dim);
    d->attn_softcap = (f & SM_FEAT_SOFTCAP) ? hp->attn_softcap : 0.0f;
    d->final_softcap = (f & SM_FEAT_SOFTCAP) ? hp->final_softcap : 0.0f;
    if (f & SM_FEAT_SWA) {
        d->window = hp->sliding_window;
        d->swa_pattern = hp->swa_pattern;
    }
    d->swa_rope = (f & SM_FEAT_SWA_ROPE) && m->rope_freq_swa;
    d->embd_scale = (f & SM_FEAT_EMBD_SCALE) ? sqrtf((float)hp->n_embd) : 0.0f;
    d->act = (f & SM_FEAT_GELU_TANH) ? SM_ACT_GELU_TANH : SM_ACT_SILU;

    const int64_t E = hp->n_embd, Q = m->q_dim, KV = m->kv_dim, F = hp->n_ff;
    const int64_t n[SM_CT_COUNT] = {
        [SM_CT_ATTN_NORM] = E, [SM_CT_FFN_NORM] = E, [SM_CT_WQ] = Q * E, [SM_CT_WK] = KV * E, [SM_CT_WV] = KV * E,
        [SM_CT_WO] = E * Q, [SM_CT_GATE] = F * E, [SM_CT_UP] = F * E, [SM_CT_DOWN] = E * F, [SM_CT_BQ] = Q,
        [SM_CT_BK] = KV, [SM_CT_BV] = KV, [SM_CT_BO] = E, [SM_CT_BGATE] = F, [SM_CT_BUP] = F, [SM_CT_BDOWN] = E,
        [SM_CT_Q_NORM] = (f & SM_FEAT_QK_NORM) ? m->head_dim : 0, [SM_CT_K_NORM] = (f & SM_FEAT_QK_NORM) ? m->head_dim : 0,
        [SM_CT_POST_ATTN_NORM] = post ? E : 0, [SM_CT_POST_FFW_NORM] = post ? E : 0};
    memcpy(d->role_n, n, sizeof n);

    /* attention */
    norm(&b, SM_BUF_X, SM_BUF_XN, SM_CT_ATTN_NORM);
    observe(&b, SM_BUF_XN, SM_IN_ATTN);
    linear(&b, SM_BUF_XN, 3, (const int[]){SM_BUF_Q, SM_BUF_K, SM_BUF_V}, (const int[]){SM_CT_WQ, SM_CT_WK, SM_CT_WV},
           (const int[]){SM_CT_BQ, SM_CT_BK, SM_CT_BV}, false);
    if (f & SM_FEAT_QK_NORM)
        emit(&b, SM_OP_HEAD_NORM, SM_BUF_Q, 2, (const int[]){SM_BUF_Q, SM_BUF_K},
             (const int[]){SM_CT_Q_NORM, SM_CT_K_NORM}, NULL);
    simple(&b, SM_OP_ROPE, SM_BUF_Q, SM_BUF_K);
    simple(&b, SM_OP_KV_STORE, SM_BUF_V, SM_BUF_K);
    simple(&b, SM_OP_ATTENTION, SM_BUF_Q, SM_BUF_ATT);
    observe(&b, SM_BUF_ATT, SM_IN_ATTN_OUT);
    residual(&b, SM_BUF_ATT, SM_CT_WO, SM_CT_BO, post ? SM_CT_POST_ATTN_NORM : SM_ROLE_NONE);
    /* feed-forward */
    norm(&b, SM_BUF_X, SM_BUF_XN, SM_CT_FFN_NORM);
    observe(&b, SM_BUF_XN, SM_IN_FFN);
    if (hp->features & SM_FEAT_MOE) { /* router, top-k, the experts' SwiGLU, into x (model/moe.c) */
        simple(&b, SM_OP_MOE, SM_BUF_XN, SM_BUF_X);
        return;
    }
    linear(&b, SM_BUF_XN, 2, (const int[]){SM_BUF_GATE, SM_BUF_UP}, (const int[]){SM_CT_GATE, SM_CT_UP},
           (const int[]){SM_CT_BGATE, SM_CT_BUP}, false);
    simple(&b, SM_OP_GLU, SM_BUF_UP, SM_BUF_GATE);
    observe(&b, SM_BUF_GATE, SM_IN_FFN_DOWN);
    residual(&b, SM_BUF_GATE, SM_CT_DOWN, SM_CT_BDOWN, post ? SM_CT_POST_FFW_NORM : SM_ROLE_NONE);
}

const void *sm_layer_role(const sm_layer_weights *L, int role, bool *matrix) {
    for (size_t i = 0; i < SM_N_BLOCK_TENSORS; i++)
        if ((int)SM_BLOCK_TENSORS[i].slot == role) {
            if (matrix) *matrix = SM_BLOCK_TENSORS[i].cols != SM_DIM_NONE;
            return (const char *)L + SM_BLOCK_TENSORS[i].off;
        }
    return NULL;
}

const char *sm_feature_name(unsigned bit) {
    static const struct { unsigned bit; const char *name; } NAMES[] = {
        {SM_FEAT_QK_NORM, "per-head q/k norm"}, {SM_FEAT_FUSED, "fused qkv / gate_up"},
        {SM_FEAT_GELU_TANH, "GELU-tanh FFN"}, {SM_FEAT_EMBD_SCALE, "embedding scale"},
        {SM_FEAT_POST_NORMS, "post-attention / post-FFN norms"}, {SM_FEAT_SOFTCAP, "logit soft-capping"},
        {SM_FEAT_SWA, "sliding-window attention"}, {SM_FEAT_NORM_SHIFT, "(1 + w) norms"},
        {SM_FEAT_SWA_ROPE, "local rope base of the sliding layers"}, {SM_FEAT_VLM_TEXT, "vision-language text model"},
        {SM_FEAT_SPM_NO_SPACE_PREFIX, "SentencePiece without space prefix"}, {SM_FEAT_MOE, "mixture of experts"},
        {SM_FEAT_MOE_BSM, "mixture of experts (Qwen3-MoE routing)"}};
    static _Thread_local char other[32];
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (NAMES[i].bit == bit) return NAMES[i].name;
    snprintf(other, sizeof other, "feature 0x%x", bit);
    return other;
}

/* block.c - calibration hooks on the runtime: activation observers, the block linears as
 * floats, token embeddings, and one decoder block evaluated alone with optional replacement
 * weights (what layer-by-layer GPTQ needs: run block l over every calibration sample,
 * quantize some of its linears, run it again with them, and so on). */
#include "runtime_internal.h"

#include "arch_internal.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    sm_linear_input in;
    sm_cuda_tensor role;
} LINEARS[SM_LIN_COUNT] = {
    [SM_LIN_Q] = {"attn_q", SM_IN_ATTN, SM_CT_WQ},         [SM_LIN_K] = {"attn_k", SM_IN_ATTN, SM_CT_WK},
    [SM_LIN_V] = {"attn_v", SM_IN_ATTN, SM_CT_WV},         [SM_LIN_O] = {"attn_output", SM_IN_ATTN_OUT, SM_CT_WO},
    [SM_LIN_GATE] = {"ffn_gate", SM_IN_FFN, SM_CT_GATE},   [SM_LIN_UP] = {"ffn_up", SM_IN_FFN, SM_CT_UP},
    [SM_LIN_DOWN] = {"ffn_down", SM_IN_FFN_DOWN, SM_CT_DOWN},
};

sm_linear_input sm_linear_input_of(sm_linear l) { return LINEARS[l].in; }
const char *sm_linear_gguf_name(sm_linear l) { return LINEARS[l].name; }
sm_cuda_tensor sm_linear_role(sm_linear l) { return LINEARS[l].role; }

int sm_context_set_observer(sm_context *c, sm_observer_fn fn, void *user) {
    if (c->cuda && fn) return sm_error("activation observers need a CPU context");
    c->obs = fn;
    c->obs_user = user;
    return 0;
}

const char *sm_model_linear_tensor(const sm_model *m, sm_linear l, int64_t *row0) {
    *row0 = 0;
    if (!(m->hp.features & SM_FEAT_FUSED)) return sm_linear_gguf_name(l);
    switch (l) {
    case SM_LIN_Q: return "attn_qkv";
    case SM_LIN_K: *row0 = m->q_dim; return "attn_qkv";
    case SM_LIN_V: *row0 = m->q_dim + m->kv_dim; return "attn_qkv";
    case SM_LIN_GATE: return "ffn_up";
    case SM_LIN_UP: *row0 = m->hp.n_ff; return "ffn_up";
    default: return sm_linear_gguf_name(l);
    }
}

const float *sm_model_block_vector(const sm_model *m, int64_t layer, const char *name, int64_t *n) {
    if (layer < 0 || layer >= m->hp.n_layer) return NULL;
    for (size_t i = 0; i < SM_N_BLOCK_TENSORS; i++) {
        const sm_block_tensor *t = &SM_BLOCK_TENSORS[i];
        const size_t k = strlen(t->gguf);
        if (t->cols != SM_DIM_NONE || !sm_block_tensor_present(&m->hp, t) || sm_block_tensor_other_arch(&m->hp, t) ||
            strncmp(name, t->gguf, k) || strcmp(name + k, t->bias ? ".bias" : ".weight"))
            continue;
        const float *v = *(float *const *)((const char *)&m->layers[layer] + t->off);
        *n = sm_dim_size(&m->hp, t->rows);
        return v;
    }
    return NULL;
}

static const sm_weight *linear(const sm_layer_weights *L, sm_linear which) {
    const sm_weight *ws[SM_LIN_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    return ws[which];
}

static int check(const sm_model *m, int64_t layer, sm_linear which) {
    if (layer < 0 || layer >= m->hp.n_layer) return sm_error("layer %lld out of range", (long long)layer);
    if ((int)which < 0 || which >= SM_LIN_COUNT) return sm_error("no such linear (%d)", (int)which);
    if ((m->hp.features & SM_FEAT_MOE) && sm_linear_input_of(which) >= SM_IN_FFN)
        return sm_error("layer %lld: %s: the model's FFN is a mixture of experts (ffn_gate_inp and the stacked "
                        "ffn_*_exps), it has no dense %s", (long long)layer, sm_linear_gguf_name(which),
                        sm_linear_gguf_name(which));
    return 0;
}

int sm_model_linear_shape(const sm_model *m, int64_t layer, sm_linear which, int64_t *rows, int64_t *cols) {
    if (check(m, layer, which)) return -1;
    const sm_weight *w = linear(&m->layers[layer], which);
    *rows = w->rows;
    *cols = w->cols;
    return 0;
}

int sm_model_linear_f32(const sm_model *m, int64_t layer, sm_linear which, float *dst) {
    if (check(m, layer, which)) return -1;
    const sm_weight *w = linear(&m->layers[layer], which);
    if (!w->data) return sm_error("layer %lld: weights not prepared (sm_model_prepare_layer)", (long long)layer);
    for (int64_t r = 0; r < w->rows; r++)
        if (sm_row_to_f32(w->type, (const char *)w->data + (size_t)r * w->stride, dst + r * w->cols, w->cols))
            return -1;
    return 0;
}

int sm_model_embed(const sm_model *m, const int32_t *tokens, int64_t n, float *x) {
    const int64_t E = m->hp.n_embd;
    for (int64_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->hp.n_vocab)
            return sm_error("token id %d at index %lld is outside the vocabulary (%lld tokens)", tokens[t],
                            (long long)t, (long long)m->hp.n_vocab);
        if (sm_row_to_f32(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.stride,
                          x + t * E, E))
            return -1;
    }
    return 0;
}

int sm_model_eval_block(const sm_model *m, sm_context *c, int64_t layer, const sm_block_override *ov, float *x,
                        int64_t n, int64_t pos0) {
    if (c->m != m) return sm_error("evaluation context belongs to another model");
    if (c->cuda) return sm_error("block evaluation needs a CPU context");
    if (layer < 0 || layer >= m->hp.n_layer) return sm_error("layer %lld out of range", (long long)layer);
    if (n < 0 || pos0 < 0 || pos0 + n > c->n_ctx)
        return sm_error("cannot evaluate %lld tokens at position %lld in a context of %lld positions", (long long)n,
                        (long long)pos0, (long long)c->n_ctx);
    sm_layer_weights L = m->layers[layer];
    if (ov)
        for (int i = 0; i < SM_LIN_COUNT; i++)
            if (ov->w[i]) {
                if (check(m, layer, (sm_linear)i)) return -1;
                sm_weight *w = (sm_weight *)linear(&L, (sm_linear)i);
                *w = (sm_weight){SM_TYPE_F32, ov->w[i], sizeof(float) * (size_t)w->cols, w->rows, w->cols};
            }
    if (!L.wq.data || !L.wk.data) /* sm_model_gguf_layout: the layer was not prepared */
        return sm_error("layer %lld: weights not prepared (sm_model_prepare_layer)", (long long)layer);
    sm_weight *exps = NULL;
    if (sm_moe_override(m, &L, ov, &exps)) return -1;
    const int64_t E = m->hp.n_embd, ld = c->ld;
    int rc = 0;
    for (int64_t b0 = 0; b0 < n && !rc; b0 += c->n_batch) {
        const int64_t nb = n - b0 < c->n_batch ? n - b0 : c->n_batch;
        float *xb = x + b0 * E;
        for (int64_t t = 0; t < nb; t++)
            for (int64_t f = 0; f < E; f++) c->x[f * ld + t] = xb[t * E + f];
        if ((rc = sm_layer_forward(c, &L, layer, nb, pos0 + b0))) break;
        for (int64_t t = 0; t < nb; t++)
            for (int64_t f = 0; f < E; f++) xb[t * E + f] = c->x[f * ld + t];
    }
    free(exps);
    return rc;
}

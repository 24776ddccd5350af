/* forward_cuda.c - hand a loaded model to the CUDA decoder, or one block of it to the CUDA
 * calibration block: every tensor is converted to float on the host one at a time (so host
 * memory holds at most one tensor's floats) and copied to the device. */
#include "arch_internal.h"

#include "kernels/kernels.h"

#include <stdlib.h>

/* A weight as float (malloc'ed), or NULL (sm_error). */
static float *weight_f32(const sm_weight *w) {
    float *buf = malloc(sizeof(float) * (size_t)w->rows * (size_t)w->cols);
    if (!buf) return sm_error("out of memory converting a %lld x %lld tensor for the GPU", (long long)w->rows,
                              (long long)w->cols), NULL;
    for (int64_t r = 0; r < w->rows; r++)
        if (sm_row_to_f32(w->type, (const char *)w->data + (size_t)r * w->stride, buf + r * w->cols, w->cols)) {
            free(buf);
            return NULL;
        }
    return buf;
}

static int upload_matrix(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const sm_weight *w) {
    float *buf = weight_f32(w);
    const int rc = buf ? sm_cuda_net_upload(net, which, layer, buf, w->rows * w->cols) : -1;
    free(buf);
    return rc;
}

static int upload_vector(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *v, int64_t n) {
    return v ? sm_cuda_net_upload(net, which, layer, v, n) : 0;
}

/* 0, or an error naming the architecture whose block the CUDA code cannot run yet. */
static int cuda_features(const sm_model *m) {
    if (m->hp.features & ~(unsigned)SM_FEAT_CUDA)
        return sm_error("CUDA: the %s block (features 0x%x) is not implemented on the GPU; use --device cpu", m->hp.arch,
                        m->hp.features & ~(unsigned)SM_FEAT_CUDA);
    if (m->n_rot != m->head_dim || m->rope_freq_long)
        return sm_error("CUDA: %s (rope over part of each head or longrope factors) is not implemented on the GPU; "
                        "use --device cpu", m->rope_freq_long ? "longrope" : "partial rotary");
    return 0;
}

int sm_cuda_net_for_model(const sm_model *m, int64_t n_ctx, sm_cuda_net **out) {
    const sm_hparams *hp = &m->hp;
    if (cuda_features(m)) return -1;
    const sm_cuda_dims d = {.n_vocab = hp->n_vocab, .n_embd = hp->n_embd, .n_ff = hp->n_ff, .n_layer = hp->n_layer,
                            .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = m->head_dim, .n_ctx = n_ctx,
                            .rms_eps = hp->rms_eps, .rope_neox = m->rope == SM_ROPE_NEOX, .rope_freq = m->rope_freq};
    sm_cuda_net *net = NULL;
    if (sm_cuda_net_new(&d, &net)) {
        sm_cuda_net_free(net);
        return -1;
    }
    int rc = upload_matrix(net, SM_CT_TOK_EMBD, -1, &m->tok_embd) || upload_matrix(net, SM_CT_OUTPUT, -1, &m->output) ||
             upload_vector(net, SM_CT_OUTPUT_NORM, -1, m->output_norm, hp->n_embd);
    /* the block's tensors from the table: each to its role; absent vectors stay absent */
    for (int64_t l = 0; l < hp->n_layer && !rc; l++) {
        const sm_layer_weights *L = &m->layers[l];
        for (size_t i = 0; i < SM_N_BLOCK_TENSORS && !rc; i++) {
            const sm_block_tensor *t = &SM_BLOCK_TENSORS[i];
            if (sm_block_tensor_other_arch(hp, t)) continue;
            const void *field = (const char *)L + t->off;
            rc = t->cols == SM_DIM_NONE
                     ? upload_vector(net, t->slot, l, *(float *const *)field, sm_dim_size(hp, t->rows))
                     : (sm_block_tensor_present(hp, t) ? upload_matrix(net, t->slot, l, (const sm_weight *)field) : 0);
        }
    }
    if (rc) {
        sm_cuda_net_free(net);
        return -1;
    }
    *out = net;
    return 0;
}

/* ---- the calibration block ---- */

int sm_model_cuda_block_new(const sm_model *m, int64_t n_tok, sm_cuda_block **out) {
    const sm_hparams *hp = &m->hp;
    *out = NULL;
    if (cuda_features(m)) return -1;
    const sm_cuda_dims d = {.n_vocab = hp->n_vocab, .n_embd = hp->n_embd, .n_ff = hp->n_ff, .n_layer = 1,
                            .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = m->head_dim, .n_ctx = n_tok,
                            .rms_eps = hp->rms_eps, .rope_neox = m->rope == SM_ROPE_NEOX, .rope_freq = m->rope_freq};
    return sm_cuda_block_new(&d, out);
}

int sm_model_cuda_block_set_linear(const sm_model *m, int64_t layer, sm_linear i, const float *w, sm_cuda_block *b) {
    static const sm_cuda_tensor CT[SM_LIN_COUNT] = {
        [SM_LIN_Q] = SM_CT_WQ, [SM_LIN_K] = SM_CT_WK, [SM_LIN_V] = SM_CT_WV, [SM_LIN_O] = SM_CT_WO,
        [SM_LIN_GATE] = SM_CT_GATE, [SM_LIN_UP] = SM_CT_UP, [SM_LIN_DOWN] = SM_CT_DOWN};
    int64_t rows, cols;
    if ((int)i < 0 || i >= SM_LIN_COUNT || sm_model_linear_shape(m, layer, i, &rows, &cols)) return -1;
    if (w) return sm_cuda_block_set(b, CT[i], w, rows * cols);
    float *buf = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!buf) return sm_error("out of memory converting a %lld x %lld tensor for the GPU", (long long)rows, (long long)cols);
    const int rc = sm_model_linear_f32(m, layer, i, buf) ? -1 : sm_cuda_block_set(b, CT[i], buf, rows * cols);
    free(buf);
    return rc;
}

int sm_model_cuda_block_load(const sm_model *m, int64_t layer, sm_cuda_block *b, const float *const *lin) {
    if (layer < 0 || layer >= m->hp.n_layer) return sm_error("layer %lld out of range", (long long)layer);
    const sm_layer_weights *L = &m->layers[layer];
    /* the block's vectors from the table (NULL removes an absent bias or norm) */
    for (size_t i = 0; i < SM_N_BLOCK_TENSORS; i++) {
        const sm_block_tensor *t = &SM_BLOCK_TENSORS[i];
        if (sm_block_tensor_other_arch(&m->hp, t)) continue;
        if (t->cols == SM_DIM_NONE &&
            sm_cuda_block_set(b, t->slot, *(float *const *)((const char *)L + t->off), sm_dim_size(&m->hp, t->rows)))
            return -1;
    }
    for (int i = 0; i < SM_LIN_COUNT; i++)
        if (sm_model_cuda_block_set_linear(m, layer, (sm_linear)i, lin ? lin[i] : NULL, b)) return -1;
    return 0;
}

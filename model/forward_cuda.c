/* forward_cuda.c - hand a loaded model to the CUDA decoder, or one block of it to the CUDA
 * calibration block: the model's block description (model/block_desc.c) and the CPU's own rope
 * tables go to the plugin, then every tensor of the description's roles is converted to float
 * on the host one at a time (so host memory holds at most one tensor's floats) and copied to
 * the device. Nothing here names a tensor: roles come from the description, fields from the
 * block tensor table (a fused store is uploaded as its row views). */
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

/* The device side of a model: its dimensions, block description and rope tables (owned). */
typedef struct cuda_setup {
    sm_block_desc desc;
    sm_cuda_dims d;
    float *tables;
} cuda_setup;

/* 0, or an error naming the first block feature the CUDA executor lacks. */
static int cuda_features(const sm_model *m) {
    const unsigned missing = m->hp.features & ~(unsigned)SM_FEAT_CUDA;
    if (!missing) return 0;
    return sm_error("CUDA: the %s block needs %s, which the GPU executor does not implement; use --device cpu",
                    m->hp.arch, sm_feature_name(missing & -missing));
}

static int setup(const sm_model *m, int64_t n_layer, int64_t n_ctx, cuda_setup *s) {
    s->tables = NULL;
    if (cuda_features(m) || sm_context_check_window(m, n_ctx)) return -1;
    sm_block_desc_build(m, &s->desc);
    const size_t table = (size_t)(m->n_rot / 2) * (size_t)n_ctx;
    s->tables = malloc(sizeof(float) * table * 4);
    if (!s->tables) return sm_error("out of memory for rope tables of %lld positions", (long long)n_ctx);
    float *t[4] = {s->tables, s->tables + table, s->tables + 2 * table, s->tables + 3 * table};
    sm_rope_tables(m, n_ctx, t[0], t[1], t[2], t[3]);
    s->d = (sm_cuda_dims){.n_vocab = m->hp.n_vocab, .n_embd = m->hp.n_embd, .n_layer = n_layer, .n_ctx = n_ctx,
                          .block = &s->desc, .rope_cos = t[0], .rope_sin = t[1],
                          .rope_cos_swa = s->desc.swa_rope ? t[2] : NULL, .rope_sin_swa = s->desc.swa_rope ? t[3] : NULL};
    return 0;
}

/* Upload role `role` of layer weights L with `put`: a matrix converted to float, a vector of n
 * floats as it is (NULL for an absent one). */
typedef int (*put_fn)(void *dst, sm_cuda_tensor role, int64_t layer, const float *v, int64_t n);

static int upload_role(const sm_layer_weights *L, int64_t layer, int role, int64_t n, put_fn put, void *dst) {
    bool matrix = false;
    const void *field = sm_layer_role(L, role, &matrix);
    if (!field) return sm_error("CUDA: tensor role %d has no field in the runtime", role);
    if (!matrix) return put(dst, (sm_cuda_tensor)role, layer, *(float *const *)field, n);
    const sm_weight *w = field;
    if (!w->data) return sm_error("layer %lld: weights not prepared (sm_model_prepare_layer)", (long long)layer);
    float *buf = weight_f32(w);
    const int rc = buf ? put(dst, (sm_cuda_tensor)role, layer, buf, w->rows * w->cols) : -1;
    free(buf);
    return rc;
}

static int put_net(void *dst, sm_cuda_tensor role, int64_t layer, const float *v, int64_t n) {
    return v ? sm_cuda_net_upload(dst, role, layer, v, n) : 0;
}

int sm_cuda_net_for_model(const sm_model *m, int64_t n_ctx, sm_cuda_net **out) {
    const sm_hparams *hp = &m->hp;
    cuda_setup s;
    sm_cuda_net *net = NULL;
    int rc = setup(m, hp->n_layer, n_ctx, &s) || sm_cuda_net_new(&s.d, &net);
    free(s.tables);
    if (rc) {
        sm_cuda_net_free(net);
        return -1;
    }
    float *w = NULL;
    rc = !(w = weight_f32(&m->tok_embd)) || sm_cuda_net_upload(net, SM_CT_TOK_EMBD, -1, w, hp->n_vocab * hp->n_embd);
    free(w);
    w = NULL;
    rc = rc || !(w = weight_f32(&m->output)) || sm_cuda_net_upload(net, SM_CT_OUTPUT, -1, w, hp->n_vocab * hp->n_embd) ||
         sm_cuda_net_upload(net, SM_CT_OUTPUT_NORM, -1, m->output_norm, hp->n_embd);
    free(w);
    /* every role of the description: absent vectors (biases) stay absent */
    for (int64_t l = 0; l < hp->n_layer && !rc; l++)
        for (int role = SM_CT_ATTN_NORM; role < SM_CT_COUNT && !rc; role++)
            if (s.desc.role_n[role]) rc = upload_role(&m->layers[l], l, role, s.desc.role_n[role], put_net, net);
    if (rc) {
        sm_cuda_net_free(net);
        return -1;
    }
    *out = net;
    return 0;
}

/* ---- the calibration block ---- */

int sm_model_cuda_block_new(const sm_model *m, int64_t n_tok, sm_cuda_block **out) {
    *out = NULL;
    cuda_setup s;
    const int rc = setup(m, 1, n_tok, &s) || sm_cuda_block_new(&s.d, out);
    free(s.tables);
    return rc ? -1 : 0;
}

static int put_block(void *dst, sm_cuda_tensor role, int64_t layer, const float *v, int64_t n) {
    (void)layer;
    return sm_cuda_block_set(dst, role, v, n);
}

int sm_model_cuda_block_set_linear(const sm_model *m, int64_t layer, sm_linear i, const float *w, sm_cuda_block *b) {
    int64_t rows, cols;
    if ((int)i < 0 || i >= SM_LIN_COUNT || sm_model_linear_shape(m, layer, i, &rows, &cols)) return -1;
    const sm_cuda_tensor role = sm_linear_role(i);
    if (w) return sm_cuda_block_set(b, role, w, rows * cols);
    return upload_role(&m->layers[layer], layer, role, rows * cols, put_block, b);
}

int sm_model_cuda_block_load(const sm_model *m, int64_t layer, sm_cuda_block *b, const float *const *lin) {
    if (layer < 0 || layer >= m->hp.n_layer) return sm_error("layer %lld out of range", (long long)layer);
    if (sm_cuda_block_set_layer(b, layer)) return -1;
    /* the description's vectors (NULL removes an absent bias or norm), then the linears */
    sm_block_desc desc;
    sm_block_desc_build(m, &desc);
    for (int role = SM_CT_ATTN_NORM; role < SM_CT_COUNT; role++) {
        bool matrix = false;
        if (!desc.role_n[role] || !sm_layer_role(&m->layers[layer], role, &matrix) || matrix) continue;
        if (upload_role(&m->layers[layer], layer, role, desc.role_n[role], put_block, b)) return -1;
    }
    for (int i = 0; i < SM_LIN_COUNT; i++)
        if (sm_model_cuda_block_set_linear(m, layer, (sm_linear)i, lin ? lin[i] : NULL, b)) return -1;
    return 0;
}

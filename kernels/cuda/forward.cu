// forward.cu - the CUDA decoder of kernels.h: weights in device memory as float (one table of
// tensor roles per layer), the embedding, every layer through the one block executor
// (block_exec.h) with its KV cache, then the output norm and the logits (cuBLAS SGEMM).
#include "block_exec.h"
#include <cuda_runtime.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 512

struct sm_cuda_net {
    smcu_exec e;
    int64_t n_vocab, n_embd, n_layer, n_ctx, kv_dim;
    float *global[3];                 // TOK_EMBD, OUTPUT, OUTPUT_NORM
    float *(*layer)[SM_CT_COUNT];     // per layer: its tensors by role (NULL: absent)
    float *k_cache, *v_cache;         // [layer][n_head_kv][n_ctx][head_dim]
    float *logits;                    // [max_batch][n_vocab]
    int32_t *tokens;
};

__global__ void kf_embed(const float *emb, const int32_t *tok, float *x, int64_t n, int64_t E) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * E; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = emb[(int64_t)tok[i / E] * E + i % E];
}

extern "C" void sm_cuda_net_free(sm_cuda_net *n) {
    if (!n) return;
    for (int i = 0; i < 3; i++) cudaFree(n->global[i]);
    if (n->layer)
        for (int64_t l = 0; l < n->n_layer; l++)
            for (int w = 0; w < SM_CT_COUNT; w++) cudaFree(n->layer[l][w]);
    free(n->layer);
    cudaFree(n->k_cache);
    cudaFree(n->v_cache);
    cudaFree(n->logits);
    cudaFree(n->tokens);
    smcu_exec_free(&n->e);
    free(n);
}

extern "C" int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out) {
    *out = NULL;
    const char *why = NULL;
    if (!sm_cuda_available(&why)) return sm_error("CUDA: no usable device (%s)", why);
    if (d->n_vocab < 1 || d->n_layer < 1 || d->n_ctx < 1 || !d->block || d->block->rows[SM_BUF_X] != d->n_embd)
        return sm_error("CUDA: bad model dimensions");
    sm_cuda_net *n = (sm_cuda_net *)calloc(1, sizeof *n);
    if (!n) return sm_error("out of memory");
    *out = n; // from here on sm_cuda_net_free cleans up
    n->n_vocab = d->n_vocab;
    n->n_embd = d->n_embd;
    n->n_layer = d->n_layer;
    n->n_ctx = d->n_ctx;
    n->kv_dim = d->block->rows[SM_BUF_K];
    const int64_t B = d->n_ctx < MAX_BATCH ? d->n_ctx : MAX_BATCH;
    if (smcu_exec_init(&n->e, d, B)) return -1;
    n->layer = (float *(*)[SM_CT_COUNT])calloc((size_t)d->n_layer, sizeof *n->layer);
    if (!n->layer) return sm_error("out of memory");
    const int64_t cache = d->n_layer * n->kv_dim * d->n_ctx;
    if (dev_alloc_floats(&n->k_cache, cache) || dev_alloc_floats(&n->v_cache, cache) ||
        dev_alloc_floats(&n->logits, B * d->n_vocab) || dev_alloc((void **)&n->tokens, sizeof(int32_t) * (size_t)B))
        return -1;
    return 0;
}

extern "C" int sm_cuda_net_upload(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *host, int64_t n) {
    const bool global = which == SM_CT_TOK_EMBD || which == SM_CT_OUTPUT || which == SM_CT_OUTPUT_NORM;
    const int64_t want = global ? (which == SM_CT_OUTPUT_NORM ? net->n_embd : net->n_vocab * net->n_embd)
                                : smcu_exec_role_size(&net->e, which);
    if (!want || (global ? layer != -1 : layer < 0 || layer >= net->n_layer))
        return sm_error("CUDA: tensor %d of layer %lld is not one of this model's", (int)which, (long long)layer);
    if (n != want)
        return sm_error("CUDA: tensor %d has %lld values, expected %lld", (int)which, (long long)n, (long long)want);
    float **dst = global ? &net->global[which] : &net->layer[layer][which];
    if (!*dst && dev_alloc_floats(dst, n)) return -1;
    CU(cudaMemcpy(*dst, host, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice), "upload weights");
    return 0;
}

static int batch(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first, float *logits) {
    smcu_exec *e = &net->e;
    const int64_t E = net->n_embd, V = net->n_vocab;
    float *x = e->buf[SM_BUF_X], *xn = e->buf[SM_BUF_XN];
    CU(cudaMemcpy(net->tokens, tokens, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice), "copy tokens");
    SM_LAUNCH(kf_embed, grid_stride_blocks(n * E), 256, net->global[SM_CT_TOK_EMBD], net->tokens, x, n, E);
    if (e->d.embd_scale > 0) smcu_scale(x, n * E, e->d.embd_scale);
    // the last layer carries only the tokens whose logits are wanted
    const int64_t last_from = !logits ? n : out_first < n ? out_first : n;
    for (int64_t l = 0; l < net->n_layer; l++) {
        const size_t off = (size_t)l * (size_t)(net->kv_dim * net->n_ctx);
        if (smcu_exec_block(e, net->layer[l], net->k_cache + off, net->v_cache + off, l, n, pos0,
                            l == net->n_layer - 1 ? last_from : 0, NULL, NULL))
            return -1;
    }
    if (!logits || out_first >= n)
        return cudaDeviceSynchronize() == cudaSuccess ? 0 : sm_error("CUDA: forward: %s", cudaGetErrorString(cudaGetLastError()));
    const int64_t n_out = n - out_first;
    smcu_exec_norm(e, x + out_first * E, net->global[SM_CT_OUTPUT_NORM], xn, n_out);
    if (smcu_linear(e->blas, net->global[SM_CT_OUTPUT], V, E, xn, n_out, net->logits, false)) return -1;
    if (e->d.final_softcap > 0) smcu_softcap(net->logits, n_out * V, e->d.final_softcap);
    CU(cudaMemcpy(logits, net->logits, sizeof(float) * (size_t)(n_out * V), cudaMemcpyDeviceToHost), "copy logits");
    return 0;
}

extern "C" int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                                float *logits) {
    if (!net->global[SM_CT_TOK_EMBD] || !net->global[SM_CT_OUTPUT] || !net->global[SM_CT_OUTPUT_NORM])
        return sm_error("CUDA: the model-wide tensors were not uploaded");
    for (int64_t l = 0; l < net->n_layer; l++)
        if (smcu_exec_ready(&net->e, net->layer[l], l)) return -1;
    for (int64_t b0 = 0; b0 < n; b0 += net->e.max_tok) {
        const int64_t nb = n - b0 < net->e.max_tok ? n - b0 : net->e.max_tok;
        const int64_t first = out_first > b0 ? out_first - b0 : 0;
        float *out = logits && first < nb ? logits + (b0 + first - out_first) * net->n_vocab : NULL;
        if (batch(net, tokens + b0, nb, pos0 + b0, first, out)) return -1;
    }
    return 0;
}

// calib_block.cu - one decoder block on the device for layer-by-layer calibration (kernels.h,
// "CUDA calibration block"): the one block executor (block_exec.h) over a sample's residual
// stream at positions 0.., with an observer that feeds each observed linear input straight into
// its device Hessian (syrk.h) and stops the pass where asked; a full pass brings the block's
// output back.
#include "block_exec.h"
#include "syrk.h"
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdlib.h>

struct sm_cuda_block {
    smcu_exec e;
    float *w[SM_CT_COUNT];  // this block's tensors by role (NULL: absent)
    float *k_cache, *v_cache;
    int64_t layer;          // the model layer (sliding window, rope tables)
};

extern "C" void sm_cuda_block_free(sm_cuda_block *b) {
    if (!b) return;
    for (int i = 0; i < SM_CT_COUNT; i++) cudaFree(b->w[i]);
    cudaFree(b->k_cache);
    cudaFree(b->v_cache);
    smcu_exec_free(&b->e);
    free(b);
}

extern "C" int sm_cuda_block_new(const sm_cuda_dims *d, sm_cuda_block **out) {
    *out = NULL;
    if (d->n_ctx < 1 || d->n_ctx > (1 << 16)) return sm_error("CUDA: bad block dimensions");
    sm_cuda_block *b = (sm_cuda_block *)calloc(1, sizeof *b);
    if (!b) return sm_error("out of memory");
    const int64_t cache = d->block ? d->block->rows[SM_BUF_K] * d->n_ctx : 0;
    if (smcu_exec_init(&b->e, d, d->n_ctx) || dev_alloc_floats(&b->k_cache, cache) ||
        dev_alloc_floats(&b->v_cache, cache)) {
        sm_cuda_block_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

extern "C" int sm_cuda_block_set(sm_cuda_block *b, sm_cuda_tensor which, const float *host, int64_t n) {
    const int64_t want = smcu_exec_role_size(&b->e, which);
    if (!want) return sm_error("CUDA: tensor %d is not one of a block's", (int)which);
    if (!host) { // an absent bias or norm
        cudaFree(b->w[which]);
        b->w[which] = NULL;
        return 0;
    }
    if (n != want)
        return sm_error("CUDA: tensor %d has %lld values, expected %lld", (int)which, (long long)n, (long long)want);
    if (!b->w[which] && dev_alloc_floats(&b->w[which], n)) return -1;
    CU(cudaMemcpy(b->w[which], host, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice), "upload weights");
    return 0;
}

extern "C" int sm_cuda_block_set_layer(sm_cuda_block *b, int64_t layer) {
    if (layer < 0) return sm_error("CUDA: layer %lld out of range", (long long)layer);
    b->layer = layer;
    return 0;
}

struct observe_ctx {
    sm_cuda_syrk *const *h;
    int stop_at;
};

// feed an observed input to its Hessian; 1 if the pass stops here
static int observe(void *user, int in, const float *x, int64_t n, int64_t cols) {
    const observe_ctx *o = (const observe_ctx *)user;
    if (o->h && o->h[in] && smcu_syrk_add_device(o->h[in], x, n, cols)) return -1;
    return in == o->stop_at ? 1 : 0;
}

extern "C" int sm_cuda_block_run(sm_cuda_block *b, float *x, int64_t n_tok, int stop_at, sm_cuda_syrk *const *h) {
    const int64_t E = b->e.d.rows[SM_BUF_X];
    if (n_tok < 1 || n_tok > b->e.max_tok)
        return sm_error("CUDA: %lld tokens in a block made for %lld", (long long)n_tok, (long long)b->e.max_tok);
    if (smcu_exec_ready(&b->e, b->w, b->layer)) return -1;
    CU(cudaMemcpy(b->e.buf[SM_BUF_X], x, sizeof(float) * (size_t)(n_tok * E), cudaMemcpyHostToDevice),
       "upload activations");
    observe_ctx o = {h, stop_at};
    const int rc = smcu_exec_block(&b->e, b->w, b->k_cache, b->v_cache, b->layer, n_tok, 0, 0, observe, &o);
    if (rc) return rc;
    CU(cudaMemcpy(x, b->e.buf[SM_BUF_X], sizeof(float) * (size_t)(n_tok * E), cudaMemcpyDeviceToHost),
       "download activations");
    return 0;
}

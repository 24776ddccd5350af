// forward.cu - the CUDA decoder of kernels.h: weights in device memory as float, token-major
// activations, cuBLAS SGEMM for every projection, small kernels for the rest (RMSNorm, RoPE,
// SiLU gate, residuals) and one block per (head, query) for causal attention over the KV
// cache. A simple first version: correctness and agreement with the CPU path come first.
#include "block_ops.cuh"
#include "check.h"
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 512

struct sm_cuda_net {
    sm_cuda_dims d;
    int64_t q_dim, kv_dim, max_batch;
    cublasHandle_t blas;
    float *global[3];                 // TOK_EMBD, OUTPUT, OUTPUT_NORM
    float **layer[SM_CT_COUNT];       // per layer tensors (index by sm_cuda_tensor)
    float *k_cache, *v_cache;         // [layer][n_head_kv][n_ctx][head_dim]
    float *rope_cos, *rope_sin;       // [n_ctx][head_dim/2]
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *logits; // batch scratch, token-major
    int32_t *tokens;
};


// ---- kernels ----

__global__ void k_embed(const float *emb, const int32_t *tok, float *x, int64_t E) {
    const int64_t t = blockIdx.x;
    for (int64_t f = threadIdx.x; f < E; f += blockDim.x) x[t * E + f] = emb[(int64_t)tok[t] * E + f];
}

// one block per token; y = x / rms(x) * w
__global__ void k_rmsnorm(const float *x, const float *w, float *y, int64_t E, float eps) {
    __shared__ double part[256];
    const int64_t t = blockIdx.x;
    const float *xr = x + t * E;
    double s = 0;
    for (int64_t f = threadIdx.x; f < E; f += blockDim.x) s += (double)xr[f] * xr[f];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step /= 2) {
        if ((int)threadIdx.x < step) part[threadIdx.x] += part[threadIdx.x + step];
        __syncthreads();
    }
    const float scale = (float)(1.0 / sqrt(part[0] / (double)E + (double)eps));
    for (int64_t f = threadIdx.x; f < E; f += blockDim.x) y[t * E + f] = (xr[f] * scale) * w[f];
}

__global__ void k_add_bias(float *y, const float *b, int64_t rows, int64_t cols) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * cols) y[i] += b[i % cols];
}

__global__ void k_add(float *x, const float *d, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += d[i];
}

__global__ void k_silu_mul(float *g, const float *u, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// grid (tokens, heads); thread i rotates pair i of one head of one token
__global__ void k_rope(float *v, int64_t width, int64_t hd, int64_t pos0, const float *cs, const float *sn,
                       bool neox) {
    const int64_t t = blockIdx.x, h = blockIdx.y, half = hd / 2;
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        float *x = v + t * width + h * hd;
        const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float c = cs[(pos0 + t) * half + i], s = sn[(pos0 + t) * half + i];
        const float xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xa * s + xb * c;
    }
}

// k/v rows of the batch into the cache at positions pos0..
__global__ void k_store_kv(const float *k, const float *v, float *kc, float *vc, int64_t n_kv, int64_t hd,
                           int64_t n_ctx, int64_t pos0) {
    const int64_t t = blockIdx.x, h = blockIdx.y;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        const int64_t dst = (h * n_ctx + pos0 + t) * hd + d;
        kc[dst] = k[t * n_kv * hd + h * hd + d];
        vc[dst] = v[t * n_kv * hd + h * hd + d];
    }
}

// grid (queries, heads), dynamic shared memory: (pos0 + n) scores + reduction space
__global__ void k_attention(const float *q, const float *kc, const float *vc, float *out, int64_t n_head,
                            int64_t group, int64_t hd, int64_t n_ctx, int64_t pos0, float scale) {
    extern __shared__ float sh[];
    const int64_t t = blockIdx.x, h = blockIdx.y, n_keys = pos0 + t + 1;
    float *p = sh, *red = sh + n_keys;
    const float *qh = q + (t * n_head + h) * hd;
    const float *kh = kc + (h / group) * n_ctx * hd, *vh = vc + (h / group) * n_ctx * hd;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n_keys; j += blockDim.x) {
        float s = 0;
        for (int64_t d = 0; d < hd; d++) s += qh[d] * kh[j * hd + d];
        p[j] = s * scale;
        mx = fmaxf(mx, p[j]);
    }
    red[threadIdx.x] = mx;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step /= 2) {
        if ((int)threadIdx.x < step) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + step]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    float sum = 0;
    for (int64_t j = threadIdx.x; j < n_keys; j += blockDim.x) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    red[threadIdx.x] = sum;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step /= 2) {
        if ((int)threadIdx.x < step) red[threadIdx.x] += red[threadIdx.x + step];
        __syncthreads();
    }
    const float inv = 1.0f / red[0];
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0;
        for (int64_t j = 0; j < n_keys; j++) acc += p[j] * vh[j * hd + d];
        out[(t * n_head + h) * hd + d] = acc * inv;
    }
}

// ---- host side ----

static int blocks(int64_t n, int per) { return (int)((n + per - 1) / per); }

extern "C" int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out) {
    *out = NULL;
    const char *why = NULL;
    if (!sm_cuda_available(&why)) return sm_error("CUDA: no usable device (%s)", why);
    sm_cuda_net *n = (sm_cuda_net *)calloc(1, sizeof *n);
    if (!n) return sm_error("out of memory");
    n->d = *d;
    n->q_dim = d->n_head * d->head_dim;
    n->kv_dim = d->n_head_kv * d->head_dim;
    n->max_batch = d->n_ctx < MAX_BATCH ? d->n_ctx : MAX_BATCH;
    const size_t half = (size_t)d->head_dim / 2, B = (size_t)n->max_batch;
    n->d.rope_freq = NULL;
    *out = n; // from here on sm_cuda_net_free cleans up
    if (cublasCreate(&n->blas) != CUBLAS_STATUS_SUCCESS) return sm_error("cuBLAS: cannot create a handle");
    // full float precision: no TF32 tensor-core shortcuts
    cublasSetMathMode(n->blas, CUBLAS_PEDANTIC_MATH);
    for (int w = SM_CT_ATTN_NORM; w < SM_CT_COUNT; w++) {
        n->layer[w] = (float **)calloc((size_t)d->n_layer, sizeof(float *));
        if (!n->layer[w]) return sm_error("out of memory");
    }
    const size_t cache = (size_t)d->n_layer * (size_t)n->kv_dim * (size_t)d->n_ctx;
    if (dev_alloc_floats(&n->k_cache, cache) || dev_alloc_floats(&n->v_cache, cache) ||
        dev_alloc_floats(&n->rope_cos, (size_t)d->n_ctx * half) || dev_alloc_floats(&n->rope_sin, (size_t)d->n_ctx * half) ||
        dev_alloc_floats(&n->x, B * d->n_embd) || dev_alloc_floats(&n->xn, B * d->n_embd) || dev_alloc_floats(&n->tmp, B * d->n_embd) ||
        dev_alloc_floats(&n->q, B * n->q_dim) || dev_alloc_floats(&n->att, B * n->q_dim) || dev_alloc_floats(&n->k, B * n->kv_dim) ||
        dev_alloc_floats(&n->v, B * n->kv_dim) || dev_alloc_floats(&n->gate, B * d->n_ff) || dev_alloc_floats(&n->up, B * d->n_ff) ||
        dev_alloc_floats(&n->logits, B * d->n_vocab))
        return -1;
    CU(cudaMalloc((void **)&n->tokens, B * sizeof(int32_t)), "out of device memory");
    // rope tables: angles in double on the host, like the CPU path
    float *cs = (float *)malloc(sizeof(float) * (size_t)d->n_ctx * half), *sn = (float *)malloc(sizeof(float) * (size_t)d->n_ctx * half);
    if (!cs || !sn) {
        free(cs);
        free(sn);
        return sm_error("out of memory");
    }
    for (int64_t p = 0; p < d->n_ctx; p++)
        for (size_t i = 0; i < half; i++) {
            const double a = (double)p * d->rope_freq[i];
            cs[p * half + i] = (float)cos(a);
            sn[p * half + i] = (float)sin(a);
        }
    cudaError_t e1 = cudaMemcpy(n->rope_cos, cs, sizeof(float) * (size_t)d->n_ctx * half, cudaMemcpyHostToDevice);
    cudaError_t e2 = cudaMemcpy(n->rope_sin, sn, sizeof(float) * (size_t)d->n_ctx * half, cudaMemcpyHostToDevice);
    free(cs);
    free(sn);
    CU(e1, "copy rope table");
    CU(e2, "copy rope table");
    return 0;
}

extern "C" void sm_cuda_net_free(sm_cuda_net *n) {
    if (!n) return;
    for (int i = 0; i < 3; i++) cudaFree(n->global[i]);
    for (int w = SM_CT_ATTN_NORM; w < SM_CT_COUNT; w++) {
        if (!n->layer[w]) continue;
        for (int64_t l = 0; l < n->d.n_layer; l++) cudaFree(n->layer[w][l]);
        free(n->layer[w]);
    }
    float *bufs[] = {n->k_cache, n->v_cache, n->rope_cos, n->rope_sin, n->x, n->xn, n->q, n->k,
                     n->v, n->att, n->tmp, n->gate, n->up, n->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(n->tokens);
    if (n->blas) cublasDestroy(n->blas);
    free(n);
}

extern "C" int sm_cuda_net_upload(sm_cuda_net *n, sm_cuda_tensor which, int64_t layer, const float *host, int64_t count) {
    float **slot;
    if (which <= SM_CT_OUTPUT_NORM) {
        if (layer != -1) return sm_error("CUDA upload: tensor %d is model-wide", (int)which);
        slot = &n->global[which];
    } else {
        if (which >= SM_CT_COUNT || layer < 0 || layer >= n->d.n_layer)
            return sm_error("CUDA upload: no tensor %d in layer %lld", (int)which, (long long)layer);
        slot = &n->layer[which][layer];
    }
    if (*slot) cudaFree(*slot);
    *slot = NULL;
    if (dev_alloc_floats(slot, count)) return -1;
    CU(cudaMemcpy(*slot, host, sizeof(float) * (size_t)count, cudaMemcpyHostToDevice), "upload weights");
    return 0;
}

// y[n][rows] = x[n][cols] . W^T with W row-major [rows][cols]
static int gemm(sm_cuda_net *net, const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y) {
    const float one = 1.0f, zero = 0.0f;
    BLAS(cublasSgemm(net->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)cols, &one, w, (int)cols, x,
                     (int)cols, &zero, y, (int)rows),
         "SGEMM");
    return 0;
}

static void bias(float *y, const float *b, int64_t n, int64_t cols) {
    if (b) k_add_bias<<<blocks(n * cols, 256), 256>>>(y, b, n, cols);
}

static int batch(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first, float *logits) {
    const sm_cuda_dims *d = &net->d;
    const int64_t E = d->n_embd, F = d->n_ff, Q = net->q_dim, KV = net->kv_dim, hd = d->head_dim;
    CU(cudaMemcpy(net->tokens, tokens, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice), "copy tokens");
    k_embed<<<(unsigned)n, 256>>>(net->global[SM_CT_TOK_EMBD], net->tokens, net->x, E);
    const size_t shmem = sizeof(float) * (size_t)(pos0 + n + 128);
    if (shmem > 48 * 1024) return sm_error("CUDA attention: %lld positions exceed this version's limit", (long long)(pos0 + n));
    for (int64_t l = 0; l < d->n_layer; l++) {
#define W(t) net->layer[t][l]
        k_rmsnorm<<<(unsigned)n, 256>>>(net->x, W(SM_CT_ATTN_NORM), net->xn, E, d->rms_eps);
        if (gemm(net, W(SM_CT_WQ), Q, E, net->xn, n, net->q) || gemm(net, W(SM_CT_WK), KV, E, net->xn, n, net->k) ||
            gemm(net, W(SM_CT_WV), KV, E, net->xn, n, net->v))
            return -1;
        bias(net->q, W(SM_CT_BQ), n, Q);
        bias(net->k, W(SM_CT_BK), n, KV);
        bias(net->v, W(SM_CT_BV), n, KV);
        block_qk_norm(net->q, net->k, W(SM_CT_Q_NORM), W(SM_CT_K_NORM), n, d->n_head, d->n_head_kv, hd, d->rms_eps);
        k_rope<<<dim3((unsigned)n, (unsigned)d->n_head), 64>>>(net->q, Q, hd, pos0, net->rope_cos, net->rope_sin, d->rope_neox);
        k_rope<<<dim3((unsigned)n, (unsigned)d->n_head_kv), 64>>>(net->k, KV, hd, pos0, net->rope_cos, net->rope_sin, d->rope_neox);
        float *kc = net->k_cache + (size_t)l * KV * d->n_ctx, *vc = net->v_cache + (size_t)l * KV * d->n_ctx;
        k_store_kv<<<dim3((unsigned)n, (unsigned)d->n_head_kv), 64>>>(net->k, net->v, kc, vc, d->n_head_kv, hd, d->n_ctx, pos0);
        k_attention<<<dim3((unsigned)n, (unsigned)d->n_head), 128, shmem>>>(
            net->q, kc, vc, net->att, d->n_head, d->n_head / d->n_head_kv, hd, d->n_ctx, pos0, 1.0f / sqrtf((float)hd));
        if (gemm(net, W(SM_CT_WO), E, Q, net->att, n, net->tmp)) return -1;
        bias(net->tmp, W(SM_CT_BO), n, E);
        k_add<<<blocks(n * E, 256), 256>>>(net->x, net->tmp, n * E);
        k_rmsnorm<<<(unsigned)n, 256>>>(net->x, W(SM_CT_FFN_NORM), net->xn, E, d->rms_eps);
        if (gemm(net, W(SM_CT_GATE), F, E, net->xn, n, net->gate) || gemm(net, W(SM_CT_UP), F, E, net->xn, n, net->up))
            return -1;
        bias(net->gate, W(SM_CT_BGATE), n, F);
        bias(net->up, W(SM_CT_BUP), n, F);
        k_silu_mul<<<blocks(n * F, 256), 256>>>(net->gate, net->up, n * F);
        if (gemm(net, W(SM_CT_DOWN), E, F, net->gate, n, net->tmp)) return -1;
        bias(net->tmp, W(SM_CT_BDOWN), n, E);
        k_add<<<blocks(n * E, 256), 256>>>(net->x, net->tmp, n * E);
#undef W
    }
    CU(cudaGetLastError(), "kernel launch");
    if (!logits || out_first >= n) return cudaDeviceSynchronize() == cudaSuccess ? 0 : sm_error("CUDA: forward: %s", cudaGetErrorString(cudaGetLastError()));
    const int64_t n_out = n - out_first;
    k_rmsnorm<<<(unsigned)n_out, 256>>>(net->x + out_first * E, net->global[SM_CT_OUTPUT_NORM], net->xn, E, d->rms_eps);
    if (gemm(net, net->global[SM_CT_OUTPUT], d->n_vocab, E, net->xn, n_out, net->logits)) return -1;
    CU(cudaMemcpy(logits, net->logits, sizeof(float) * (size_t)(n_out * d->n_vocab), cudaMemcpyDeviceToHost),
       "copy logits");
    return 0;
}

extern "C" int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                                float *logits) {
    if (!net->global[SM_CT_TOK_EMBD] || !net->global[SM_CT_OUTPUT] || !net->global[SM_CT_OUTPUT_NORM])
        return sm_error("CUDA: the model-wide tensors were not uploaded");
    for (int w = SM_CT_ATTN_NORM; w <= SM_CT_DOWN; w++)
        for (int64_t l = 0; l < net->d.n_layer; l++)
            if (!net->layer[w][l]) return sm_error("CUDA: tensor %d of layer %lld was not uploaded", w, (long long)l);
    for (int64_t b0 = 0; b0 < n; b0 += net->max_batch) {
        const int64_t nb = n - b0 < net->max_batch ? n - b0 : net->max_batch;
        const int64_t first = out_first > b0 ? out_first - b0 : 0;
        float *out = logits && first < nb ? logits + (b0 + first - out_first) * net->d.n_vocab : NULL;
        if (batch(net, tokens + b0, nb, pos0 + b0, first, out)) return -1;
    }
    return 0;
}

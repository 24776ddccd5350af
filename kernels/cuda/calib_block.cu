// calib_block.cu - one decoder block on the device for layer-by-layer calibration (kernels.h,
// "CUDA calibration block"): a sample's residual stream goes up, through the block's float
// weights (cuBLAS SGEMMs, one pair of SGEMMs per head for causal attention, small element-wise
// kernels), its observed linear inputs go straight into device Hessians (syrk.h), and a full
// pass brings the block's output back.
//
// Activations are token-major (row t = token t). A row-major r x c matrix is the column-major
// c x r matrix of its transpose; the SGEMMs below are written on the transposes.
#include "block_ops.cuh"
#include "check.h"
#include "syrk.h"
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sm_cuda_block {
    sm_cuda_dims d;
    int64_t q_dim, kv_dim;
    cublasHandle_t blas;
    float *w[SM_CT_COUNT];          // this block's tensors (layer ones only); biases may be NULL
    int64_t w_n[SM_CT_COUNT];
    float *rope_cos, *rope_sin;     // [head_dim/2][n_ctx]
    float *x, *xn, *q, *k, *v, *att, *s, *tmp, *gate, *up, *scale;
};

// ---- kernels: grid-stride loops, one thread per independent output ----

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// scale[t] = 1 / rms(x_t), the sum of squares in double in feature order (as on the CPU)
__global__ void kb_rms_scale(const float *x, float *scale, int64_t n, int64_t E, float eps) {
    GRID_STRIDE(t, n) {
        const float *xr = x + t * E;
        double ss = 0;
        for (int64_t f = 0; f < E; f++) ss += (double)xr[f] * xr[f];
        scale[t] = (float)(1.0 / sqrt(ss / (double)E + (double)eps));
    }
}

// y = (x * scale[t]) * w, one thread per element (coalesced)
__global__ void kb_scale_mul(const float *x, const float *scale, const float *w, float *y, int64_t n, int64_t E) {
    GRID_STRIDE(i, n * E) y[i] = (x[i] * scale[i / E]) * w[i % E];
}

__global__ void kb_add_bias(float *y, const float *b, int64_t n, int64_t cols) {
    GRID_STRIDE(i, n * cols) y[i] += b[i % cols];
}

__global__ void kb_add(float *x, const float *d, int64_t n) {
    GRID_STRIDE(i, n) x[i] += d[i];
}

__global__ void kb_silu_mul(float *g, const float *u, int64_t n) {
    GRID_STRIDE(i, n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// rotate pair i of head h of token t (positions 0..n-1); width = the row's floats
__global__ void kb_rope(float *v, int64_t n, int64_t heads, int64_t hd, int64_t width, const float *cs, const float *sn,
                        int64_t n_ctx, bool neox) {
    const int64_t half = hd / 2;
    GRID_STRIDE(idx, n * heads * half) {
        const int64_t i = idx % half, h = idx / half % heads, t = idx / half / heads;
        float *x = v + t * width + h * hd;
        const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float c = cs[i * n_ctx + t], s = sn[i * n_ctx + t];
        const float xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xa * s + xb * c;
    }
}

// s holds the scores of query i and key j at s[i + j*n] (queries x keys, column-major: a
// warp's threads, one query each, read consecutive addresses); each query's row becomes the
// causal softmax of its scaled scores: keys 0..i, zero beyond
__global__ void kb_causal_softmax(float *s, int64_t n, float scale) {
    GRID_STRIDE(i, n) {
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; j++) mx = fmaxf(mx, s[i + j * n] * scale);
        float sum = 0;
        for (int64_t j = 0; j <= i; j++) {
            const float e = expf(s[i + j * n] * scale - mx);
            s[i + j * n] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= i; j++) s[i + j * n] *= inv;
        for (int64_t j = i + 1; j < n; j++) s[i + j * n] = 0;
    }
}

// ---- host side ----

extern "C" void sm_cuda_block_free(sm_cuda_block *b) {
    if (!b) return;
    for (int i = 0; i < SM_CT_COUNT; i++) cudaFree(b->w[i]);
    float *bufs[] = {b->rope_cos, b->rope_sin, b->x, b->xn, b->q, b->k, b->v, b->att, b->s, b->tmp, b->gate, b->up, b->scale};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    if (b->blas) cublasDestroy(b->blas);
    free(b);
}

static int block_init(sm_cuda_block *b, const sm_cuda_dims *d) {
    const int64_t n = d->n_ctx, E = d->n_embd, F = d->n_ff, half = d->head_dim / 2;
    b->d = *d;
    b->d.rope_freq = NULL;
    b->q_dim = d->n_head * d->head_dim;
    b->kv_dim = d->n_head_kv * d->head_dim;
    BLAS(cublasCreate(&b->blas), "create handle");
    if (dev_alloc_floats(&b->rope_cos, half * n) || dev_alloc_floats(&b->rope_sin, half * n) || dev_alloc_floats(&b->x, n * E) ||
        dev_alloc_floats(&b->xn, n * E) || dev_alloc_floats(&b->q, n * b->q_dim) || dev_alloc_floats(&b->k, n * b->kv_dim) ||
        dev_alloc_floats(&b->v, n * b->kv_dim) || dev_alloc_floats(&b->att, n * b->q_dim) || dev_alloc_floats(&b->s, n * n) ||
        dev_alloc_floats(&b->tmp, n * E) || dev_alloc_floats(&b->gate, n * F) || dev_alloc_floats(&b->up, n * F) || dev_alloc_floats(&b->scale, n))
        return -1;
    // the CPU's tables: angles in double, then float
    float *cs = (float *)malloc(sizeof(float) * (size_t)(half * n)), *sn = (float *)malloc(sizeof(float) * (size_t)(half * n));
    if (!cs || !sn) {
        free(cs);
        free(sn);
        return sm_error("out of memory");
    }
    for (int64_t i = 0; i < half; i++)
        for (int64_t p = 0; p < n; p++) {
            const double a = (double)p * d->rope_freq[i];
            cs[i * n + p] = (float)cos(a);
            sn[i * n + p] = (float)sin(a);
        }
    cudaError_t e1 = cudaMemcpy(b->rope_cos, cs, sizeof(float) * (size_t)(half * n), cudaMemcpyHostToDevice);
    cudaError_t e2 = cudaMemcpy(b->rope_sin, sn, sizeof(float) * (size_t)(half * n), cudaMemcpyHostToDevice);
    free(cs);
    free(sn);
    CU(e1, "upload the rope table");
    CU(e2, "upload the rope table");
    return 0;
}

extern "C" int sm_cuda_block_new(const sm_cuda_dims *d, sm_cuda_block **out) {
    *out = NULL;
    if (d->n_ctx < 1 || d->n_ctx > (1 << 16) || d->n_embd < 1 || d->n_ff < 1 || d->n_head < 1 || d->n_head_kv < 1 ||
        d->n_head % d->n_head_kv || d->head_dim < 2 || d->head_dim % 2 || !d->rope_freq)
        return sm_error("CUDA: bad block dimensions");
    sm_cuda_block *b = (sm_cuda_block *)calloc(1, sizeof *b);
    if (!b) return sm_error("out of memory");
    if (block_init(b, d)) {
        sm_cuda_block_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

// the element count each layer tensor must have (0: not a layer tensor)
static int64_t expected(const sm_cuda_block *b, sm_cuda_tensor which) {
    const int64_t E = b->d.n_embd, F = b->d.n_ff, Q = b->q_dim, KV = b->kv_dim;
    switch (which) {
    case SM_CT_ATTN_NORM: case SM_CT_FFN_NORM: case SM_CT_BO: case SM_CT_BDOWN: return E;
    case SM_CT_WQ: return Q * E;
    case SM_CT_WK: case SM_CT_WV: return KV * E;
    case SM_CT_WO: return E * Q;
    case SM_CT_GATE: case SM_CT_UP: case SM_CT_DOWN: return F * E;
    case SM_CT_BQ: return Q;
    case SM_CT_BK: case SM_CT_BV: return KV;
    case SM_CT_BGATE: case SM_CT_BUP: return F;
    case SM_CT_Q_NORM: case SM_CT_K_NORM: return b->d.head_dim;
    default: return 0;
    }
}

extern "C" int sm_cuda_block_set(sm_cuda_block *b, sm_cuda_tensor which, const float *host, int64_t n) {
    if ((int)which < 0 || which >= SM_CT_COUNT || !expected(b, which))
        return sm_error("CUDA: tensor %d is not one of a block's", (int)which);
    if (!host) { // an absent bias
        cudaFree(b->w[which]);
        b->w[which] = NULL;
        return 0;
    }
    if (n != expected(b, which))
        return sm_error("CUDA: tensor %d has %lld values, expected %lld", (int)which, (long long)n,
                        (long long)expected(b, which));
    if (!b->w[which] && dev_alloc_floats(&b->w[which], n)) return -1;
    CU(cudaMemcpy(b->w[which], host, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice), "upload weights");
    return 0;
}

// y (n x rows, token-major) = x (n x cols) W^T for W rows x cols (row-major): column-major
// y^T = W x^T with W read as its column-major transpose
static int linear(sm_cuda_block *b, const float *x, int64_t n, int64_t cols, sm_cuda_tensor w, int64_t rows,
                  sm_cuda_tensor bias, float *y) {
    const float one = 1.0f, zero = 0.0f;
    BLAS(cublasSgemm(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)cols, &one, b->w[w], (int)cols, x,
                     (int)cols, &zero, y, (int)rows),
         "SGEMM (linear)");
    if (b->w[bias]) SM_LAUNCH(kb_add_bias, grid_stride_blocks(n * rows), 256, y, b->w[bias], n, rows);
    return 0;
}

// causal attention of every head over the block's n tokens: per head, the scores
// S = Q_h K_h^T (queries x keys), each query's causal softmax, then att_h = S V_h
static int attention(sm_cuda_block *b, int64_t n) {
    const int64_t hd = b->d.head_dim, Q = b->q_dim, KV = b->kv_dim, group = b->d.n_head / b->d.n_head_kv;
    const float one = 1.0f, zero = 0.0f, scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = 0; h < b->d.n_head; h++) {
        const int64_t kvh = h / group;
        // S[i + j*n] = q_i . k_j: q_h and k_h read column-major as hd x n (ld Q, ld KV), the
        // first transposed
        BLAS(cublasSgemm(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)n, (int)hd, &one, b->q + h * hd, (int)Q,
                         b->k + kvh * hd, (int)KV, &zero, b->s, (int)n),
             "SGEMM (scores)");
        SM_LAUNCH(kb_causal_softmax, grid_stride_blocks(n), 256, b->s, n, scale);
        // att_i (hd floats at att + i*Q + h*hd) = sum over keys j of P[i + j*n] v_j: column-major
        // (hd x n queries, ld Q) = V_h (hd x n keys, ld KV) times S transposed
        BLAS(cublasSgemm(b->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)hd, (int)n, (int)n, &one, b->v + kvh * hd, (int)KV,
                         b->s, (int)n, &zero, b->att + h * hd, (int)Q),
             "SGEMM (values)");
    }
    return 0;
}

// feed an observed input to its Hessian; 1 if the pass stops here
static int observe(sm_cuda_syrk *const *h, int which, int stop_at, const float *x, int64_t n, int64_t cols) {
    if (h && h[which] && smcu_syrk_add_device(h[which], x, n, cols)) return -1;
    return which == stop_at ? 1 : 0;
}

static int run(sm_cuda_block *b, float *x_host, int64_t n, int stop_at, sm_cuda_syrk *const *h) {
    const sm_cuda_dims *d = &b->d;
    const int64_t E = d->n_embd, F = d->n_ff, Q = b->q_dim, KV = b->kv_dim;
    CU(cudaMemcpy(b->x, x_host, sizeof(float) * (size_t)(n * E), cudaMemcpyHostToDevice), "upload activations");
    int rc;
    SM_LAUNCH(kb_rms_scale, grid_stride_blocks(n), 256, b->x, b->scale, n, E, d->rms_eps);
    SM_LAUNCH(kb_scale_mul, grid_stride_blocks(n * E), 256, b->x, b->scale, b->w[SM_CT_ATTN_NORM], b->xn, n, E);
    if ((rc = observe(h, SM_CUDA_IN_ATTN, stop_at, b->xn, n, E))) return rc;
    if (linear(b, b->xn, n, E, SM_CT_WQ, Q, SM_CT_BQ, b->q) || linear(b, b->xn, n, E, SM_CT_WK, KV, SM_CT_BK, b->k) ||
        linear(b, b->xn, n, E, SM_CT_WV, KV, SM_CT_BV, b->v))
        return -1;
    block_qk_norm(b->q, b->k, b->w[SM_CT_Q_NORM], b->w[SM_CT_K_NORM], n, d->n_head, d->n_head_kv, d->head_dim, d->rms_eps);
    SM_LAUNCH(kb_rope, grid_stride_blocks(n * d->n_head * (d->head_dim / 2)), 256, b->q, n, d->n_head, d->head_dim, Q,
              b->rope_cos, b->rope_sin, d->n_ctx, d->rope_neox);
    SM_LAUNCH(kb_rope, grid_stride_blocks(n * d->n_head_kv * (d->head_dim / 2)), 256, b->k, n, d->n_head_kv, d->head_dim, KV,
              b->rope_cos, b->rope_sin, d->n_ctx, d->rope_neox);
    if (attention(b, n)) return -1;
    if ((rc = observe(h, SM_CUDA_IN_ATTN_OUT, stop_at, b->att, n, Q))) return rc;
    if (linear(b, b->att, n, Q, SM_CT_WO, E, SM_CT_BO, b->tmp)) return -1;
    SM_LAUNCH(kb_add, grid_stride_blocks(n * E), 256, b->x, b->tmp, n * E);
    SM_LAUNCH(kb_rms_scale, grid_stride_blocks(n), 256, b->x, b->scale, n, E, d->rms_eps);
    SM_LAUNCH(kb_scale_mul, grid_stride_blocks(n * E), 256, b->x, b->scale, b->w[SM_CT_FFN_NORM], b->xn, n, E);
    if ((rc = observe(h, SM_CUDA_IN_FFN, stop_at, b->xn, n, E))) return rc;
    if (linear(b, b->xn, n, E, SM_CT_GATE, F, SM_CT_BGATE, b->gate) || linear(b, b->xn, n, E, SM_CT_UP, F, SM_CT_BUP, b->up))
        return -1;
    SM_LAUNCH(kb_silu_mul, grid_stride_blocks(n * F), 256, b->gate, b->up, n * F);
    if ((rc = observe(h, SM_CUDA_IN_FFN_DOWN, stop_at, b->gate, n, F))) return rc;
    if (linear(b, b->gate, n, F, SM_CT_DOWN, E, SM_CT_BDOWN, b->tmp)) return -1;
    SM_LAUNCH(kb_add, grid_stride_blocks(n * E), 256, b->x, b->tmp, n * E);
    CU(cudaGetLastError(), "kernel launch");
    CU(cudaMemcpy(x_host, b->x, sizeof(float) * (size_t)(n * E), cudaMemcpyDeviceToHost), "download activations");
    return 0;
}

extern "C" int sm_cuda_block_run(sm_cuda_block *b, float *x, int64_t n_tok, int stop_at, sm_cuda_syrk *const *h) {
    if (n_tok < 1 || n_tok > b->d.n_ctx)
        return sm_error("CUDA: %lld tokens in a block made for %lld", (long long)n_tok, (long long)b->d.n_ctx);
    static const sm_cuda_tensor needed[] = {SM_CT_ATTN_NORM, SM_CT_FFN_NORM, SM_CT_WQ, SM_CT_WK, SM_CT_WV,
                                            SM_CT_WO, SM_CT_GATE, SM_CT_UP, SM_CT_DOWN};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!b->w[needed[i]]) return sm_error("CUDA: block tensor %d was not uploaded", (int)needed[i]);
    const int rc = run(b, x, n_tok, stop_at, h);
    if (rc < 0) return -1;
    CU(cudaGetLastError(), "kernel launch");
    return rc;
}

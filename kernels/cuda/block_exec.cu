// block_exec.cu - the one CUDA decoder block (block_exec.h): kernels.h's sm_block_desc executed
// op by op on the device, with cuBLAS SGEMMs for the linears and for attention (two per head,
// over the layer's KV cache) and grid-stride element-wise kernels for the rest. The same
// arithmetic as the CPU executor (model/forward.c) in float: sums in another order, so results
// agree to rounding. Every kernel is a 1-D grid-stride loop without shared memory, so that the
// host emulation of tests/cuda_emu/ runs this very source.
#include "block_exec.h"
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
#define LAUNCH(kernel, n, ...) SM_LAUNCH(kernel, grid_stride_blocks(n), 256, __VA_ARGS__)

// ---- kernels ----

// scale[t] = 1 / rms(x_t), the sum of squares in double in feature order (as on the CPU)
__global__ void kx_rms_scale(const float *x, float *scale, int64_t n, int64_t E, float eps) {
    GRID_STRIDE(t, n) {
        const float *xr = x + t * E;
        double ss = 0;
        for (int64_t f = 0; f < E; f++) ss += (double)xr[f] * xr[f];
        scale[t] = (float)(1.0 / sqrt(ss / (double)E + (double)eps));
    }
}

// y = (x * scale[t]) * w, one thread per element (x and y may be the same buffer)
__global__ void kx_scale_mul(const float *x, const float *scale, const float *w, float *y, int64_t n, int64_t E) {
    GRID_STRIDE(i, n * E) y[i] = (x[i] * scale[i / E]) * w[i % E];
}

__global__ void kx_add_bias(float *y, const float *b, int64_t n, int64_t cols) {
    GRID_STRIDE(i, n * cols) y[i] += b[i % cols];
}

__global__ void kx_add(float *x, const float *d, int64_t n) {
    GRID_STRIDE(i, n) x[i] += d[i];
}

__global__ void kx_scale(float *x, int64_t n, float s) {
    GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void kx_softcap(float *x, int64_t n, float cap) {
    GRID_STRIDE(i, n) x[i] = tanhf(x[i] / cap) * cap;
}

// g = act(g) * u: SiLU, or GELU with the tanh approximation (transformers' gelu_pytorch_tanh)
__global__ void kx_glu(float *g, const float *u, int64_t n, int act) {
    GRID_STRIDE(i, n) {
        const float x = g[i];
        g[i] = act == SM_ACT_GELU_TANH ? 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))) * u[i]
                                       : x / (1.0f + expf(-x)) * u[i];
    }
}

// per-head RMSNorm: head h of token t (hd floats at v + t*heads*hd + h*hd) divided by its rms,
// times w[hd]; the sum of squares in double in feature order, as on the CPU
__global__ void kx_head_norm(float *v, const float *w, int64_t n, int64_t heads, int64_t hd, float eps) {
    GRID_STRIDE(i, n * heads) {
        float *x = v + i * hd;
        double ss = 0;
        for (int64_t d = 0; d < hd; d++) ss += (double)x[d] * x[d];
        const float s = (float)(1.0 / sqrt(ss / (double)hd + (double)eps));
        for (int64_t d = 0; d < hd; d++) x[d] = (x[d] * s) * w[d];
    }
}

// rotate pair i (of n_rot/2) of head h of token t at position pos0 + t; the dimensions past
// n_rot pass through (partial rotary). Tables [n_rot/2][n_ctx].
__global__ void kx_rope(float *v, int64_t n, int64_t heads, int64_t hd, int64_t n_rot, const float *cs, const float *sn,
                        int64_t n_ctx, int64_t pos0, bool neox) {
    const int64_t half = n_rot / 2;
    GRID_STRIDE(idx, n * heads * half) {
        const int64_t i = idx % half, h = idx / half % heads, t = idx / half / heads;
        float *x = v + (t * heads + h) * hd;
        const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float c = cs[i * n_ctx + pos0 + t], s = sn[i * n_ctx + pos0 + t];
        const float xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xa * s + xb * c;
    }
}

// token t's k and v rows into the cache at position pos0 + t ([n_kv][n_ctx][hd])
__global__ void kx_store_kv(const float *k, const float *v, float *kc, float *vc, int64_t n, int64_t n_kv, int64_t hd,
                            int64_t n_ctx, int64_t pos0) {
    GRID_STRIDE(i, n * n_kv * hd) {
        const int64_t d = i % hd, h = i / hd % n_kv, t = i / hd / n_kv;
        const int64_t dst = (h * n_ctx + pos0 + t) * hd + d;
        kc[dst] = k[i];
        vc[dst] = v[i];
    }
}

// s holds the scores of query i and key j at s[i + j*nq] (column-major: a warp's threads, one
// query each, read consecutive addresses); query i (position base + i) sees keys
// first..base+i, first = base + i - window + 1 with a window (> 0), else 0. Each query's row
// becomes the softmax of its scaled (and soft-capped, cap > 0) scores, zero elsewhere.
__global__ void kx_softmax(float *s, int64_t nq, int64_t n_keys, int64_t base, float scale, float cap, int64_t window) {
    GRID_STRIDE(i, nq) {
        const int64_t last = base + i, first = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
        float mx = -INFINITY;
        for (int64_t j = first; j <= last; j++) {
            float v = s[i + j * nq] * scale;
            if (cap > 0) v = tanhf(v / cap) * cap;
            s[i + j * nq] = v;
            mx = fmaxf(mx, v);
        }
        float sum = 0;
        for (int64_t j = first; j <= last; j++) {
            const float e = expf(s[i + j * nq] - mx);
            s[i + j * nq] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < n_keys; j++) s[i + j * nq] = j < first || j > last ? 0.0f : s[i + j * nq] * inv;
    }
}

// ---- host side ----

void smcu_scale(float *x, int64_t n, float s) { LAUNCH(kx_scale, n, x, n, s); }
void smcu_softcap(float *x, int64_t n, float cap) { LAUNCH(kx_softcap, n, x, n, cap); }

static void norm(smcu_exec *e, const float *x, const float *w, float *y, int64_t n, int64_t E) {
    LAUNCH(kx_rms_scale, n, x, e->scale, n, E, e->d.rms_eps);
    LAUNCH(kx_scale_mul, n * E, x, e->scale, w, y, n, E);
}

void smcu_exec_norm(smcu_exec *e, const float *x, const float *w, float *y, int64_t n) {
    norm(e, x, w, y, n, e->d.rows[SM_BUF_X]);
}

int smcu_linear(cublasHandle_t blas, const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                bool accumulate) {
    // column-major: y^T (rows x n) = W (read as its column-major transpose, cols x rows) ^T x^T
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    BLAS(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)cols, &one, w, (int)cols, x, (int)cols,
                     &beta, y, (int)rows),
         "SGEMM (linear)");
    return 0;
}

void smcu_exec_free(smcu_exec *e) {
    for (int i = 0; i < SM_BUF_COUNT; i++) cudaFree(e->buf[i]);
    for (int i = 0; i < 4; i++) cudaFree(e->rope[i]);
    cudaFree(e->s);
    cudaFree(e->scale);
    if (e->blas) cublasDestroy(e->blas);
    memset(e, 0, sizeof *e);
}

int smcu_exec_init(smcu_exec *e, const sm_cuda_dims *dims, int64_t max_tok) {
    memset(e, 0, sizeof *e);
    const sm_block_desc *d = dims->block;
    if (!d || d->n_ops < 1 || d->n_ops > SM_BLOCK_MAX_OPS || dims->n_ctx < 1 || max_tok < 1 || max_tok > dims->n_ctx ||
        d->n_head < 1 || d->n_head_kv < 1 || d->n_head % d->n_head_kv || d->head_dim < 2 || d->n_rot < 2 ||
        d->n_rot % 2 || d->n_rot > d->head_dim || !dims->rope_cos || !dims->rope_sin ||
        (d->swa_rope && (!dims->rope_cos_swa || !dims->rope_sin_swa)))
        return sm_error("CUDA: bad block description or dimensions");
    for (int i = 0; i < d->n_ops; i++)
        if (d->ops[i].op > SM_OP_GLU || d->ops[i].src >= SM_BUF_COUNT || d->ops[i].n_out > 3)
            return sm_error("CUDA: operation %d of the block description is not one this plugin knows (rebuild smelt)", i);
    e->d = *d;
    e->max_tok = max_tok;
    e->n_ctx = dims->n_ctx;
    BLAS(cublasCreate(&e->blas), "create handle");
    // full float precision: no TF32 tensor-core shortcuts
    BLAS(cublasSetMathMode(e->blas, CUBLAS_PEDANTIC_MATH), "set math mode");
    for (int b = 0; b < SM_BUF_COUNT; b++)
        if (dev_alloc_floats(&e->buf[b], max_tok * d->rows[b])) return -1;
    if (dev_alloc_floats(&e->s, max_tok * dims->n_ctx) || dev_alloc_floats(&e->scale, max_tok)) return -1;
    const float *host[4] = {dims->rope_cos, dims->rope_sin, dims->rope_cos_swa, dims->rope_sin_swa};
    const size_t table = (size_t)(d->n_rot / 2) * (size_t)dims->n_ctx;
    for (int i = 0; i < (d->swa_rope ? 4 : 2); i++) {
        if (dev_alloc_floats(&e->rope[i], (int64_t)table)) return -1;
        CU(cudaMemcpy(e->rope[i], host[i], sizeof(float) * table, cudaMemcpyHostToDevice), "upload a rope table");
    }
    return 0;
}

int64_t smcu_exec_role_size(const smcu_exec *e, int role) {
    return role >= SM_CT_ATTN_NORM && role < SM_CT_COUNT ? e->d.role_n[role] : 0;
}

int smcu_exec_ready(const smcu_exec *e, float *const *w, int64_t layer) {
    for (int i = 0; i < e->d.n_ops; i++) {
        const sm_block_op *o = &e->d.ops[i];
        if (o->op != SM_OP_NORM && o->op != SM_OP_LINEAR) continue; // head norms and biases: where uploaded
        for (int j = 0; j < o->n_out; j++)
            if (o->w[j] != SM_ROLE_NONE && !w[o->w[j]])
                return sm_error("CUDA: block tensor %d (op %d) of layer %lld was not uploaded", o->w[j], i, (long long)layer);
    }
    return 0;
}

// causal attention of the nq queries in q (positions base..) over the cache's base + nq keys:
// per head, S = Q_h K_h^T, its softmax, then out_h = S V_h
static int attention(smcu_exec *e, const float *q, float *out, const float *kc, const float *vc, int64_t nq,
                     int64_t base, int64_t layer) {
    const sm_block_desc *d = &e->d;
    const int64_t hd = d->head_dim, Q = d->rows[SM_BUF_Q], group = d->n_head / d->n_head_kv, n_keys = base + nq;
    const int64_t window = sm_block_swa_layer(d, layer) ? d->window : 0;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t h = 0; h < d->n_head; h++) {
        const float *kh = kc + (h / group) * e->n_ctx * hd, *vh = vc + (h / group) * e->n_ctx * hd;
        // S[i + j*nq] = q_i . k_j: q_h column-major hd x nq (ld Q) transposed, K_h hd x n_keys (ld hd)
        BLAS(cublasSgemm(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nq, (int)n_keys, (int)hd, &one, q + h * hd, (int)Q, kh,
                         (int)hd, &zero, e->s, (int)nq),
             "SGEMM (scores)");
        LAUNCH(kx_softmax, nq, e->s, nq, n_keys, base, d->attn_scale, d->attn_softcap, window);
        // out_i (hd floats at out + i*Q + h*hd) = sum over keys j of P[i + j*nq] v_j
        BLAS(cublasSgemm(e->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)hd, (int)nq, (int)n_keys, &one, vh, (int)hd, e->s, (int)nq,
                         &zero, out + h * hd, (int)Q),
             "SGEMM (values)");
    }
    return 0;
}

int smcu_exec_block(smcu_exec *e, float *const *w, float *kc, float *vc, int64_t layer, int64_t n, int64_t pos0,
                    int64_t from, smcu_observer obs, void *user) {
    const sm_block_desc *d = &e->d;
    if (n < 1 || n > e->max_tok || pos0 < 0 || pos0 + n > e->n_ctx || from < 0 || from > n)
        return sm_error("CUDA: %lld tokens at position %lld in a block made for %lld tokens of %lld positions",
                        (long long)n, (long long)pos0, (long long)e->max_tok, (long long)e->n_ctx);
    int64_t col = 0, k = n; // the tokens in play: [col, col + k)
#define AT(b) (e->buf[b] + col * d->rows[b])
    for (int i = 0; i < d->n_ops && k > 0; i++) {
        const sm_block_op *o = &d->ops[i];
        float *src = AT(o->src), *dst = AT(o->dst[0]);
        switch ((sm_block_opcode)o->op) {
        case SM_OP_NORM: norm(e, src, w[o->w[0]], dst, k, d->rows[o->src]); break;
        case SM_OP_OBSERVE:
            if (obs) {
                const int rc = obs(user, o->in, src, k, d->rows[o->src]);
                if (rc) return rc;
            }
            break;
        case SM_OP_LINEAR:
            for (int j = 0; j < o->n_out; j++) {
                const int64_t rows = d->rows[o->dst[j]];
                float *y = AT(o->dst[j]);
                if (smcu_linear(e->blas, w[o->w[j]], rows, d->rows[o->src], src, k, y, o->accumulate)) return -1;
                if (o->b[j] != SM_ROLE_NONE && w[o->b[j]]) LAUNCH(kx_add_bias, k * rows, y, w[o->b[j]], k, rows);
            }
            break;
        case SM_OP_HEAD_NORM: {
            const int64_t heads[2] = {d->n_head, d->n_head_kv};
            for (int j = 0; j < 2 && j < o->n_out; j++)
                if (w[o->w[j]]) LAUNCH(kx_head_norm, k * heads[j], AT(o->dst[j]), w[o->w[j]], k, heads[j], d->head_dim, d->rms_eps);
            break;
        }
        case SM_OP_ROPE: {
            const bool local = d->swa_rope && sm_block_swa_layer(d, layer);
            const float *cs = e->rope[local ? 2 : 0], *sn = e->rope[local ? 3 : 1];
            const int64_t half = d->n_rot / 2;
            LAUNCH(kx_rope, k * d->n_head * half, AT(SM_BUF_Q), k, d->n_head, d->head_dim, d->n_rot, cs, sn, e->n_ctx,
                   pos0 + col, d->rope_neox);
            LAUNCH(kx_rope, k * d->n_head_kv * half, AT(SM_BUF_K), k, d->n_head_kv, d->head_dim, d->n_rot, cs, sn, e->n_ctx,
                   pos0 + col, d->rope_neox);
            break;
        }
        case SM_OP_KV_STORE:
            LAUNCH(kx_store_kv, n * d->rows[SM_BUF_K], e->buf[SM_BUF_K], e->buf[SM_BUF_V], kc, vc, n, d->n_head_kv,
                   d->head_dim, e->n_ctx, pos0);
            col = from, k = n - from;
            break;
        case SM_OP_ATTENTION:
            if (attention(e, src, dst, kc, vc, k, pos0 + col, layer)) return -1;
            break;
        case SM_OP_ADD: LAUNCH(kx_add, k * d->rows[o->dst[0]], dst, src, k * d->rows[o->dst[0]]); break;
        case SM_OP_MOE: break; // not on the GPU: refused where the description is checked (above)
        case SM_OP_GLU: LAUNCH(kx_glu, k * d->rows[o->dst[0]], dst, src, k * d->rows[o->dst[0]], d->act); break;
        }
    }
#undef AT
    CU(cudaGetLastError(), "kernel launch");
    return 0;
}

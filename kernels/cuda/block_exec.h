// block_exec.h - (plugin-internal) the one CUDA decoder block: an executor of kernels.h's
// sm_block_desc (model/block_desc.c builds it), used by the whole-model forward (forward.cu) and
// the calibration block (calib_block.cu, the same executor with an observer feeding device
// Hessians). It knows operations, buffers and tensor roles by index only: no architecture and no
// tensor of one is named here. Activations are token-major (row t = token t).
#ifndef SMELT_CUDA_BLOCK_EXEC_H
#define SMELT_CUDA_BLOCK_EXEC_H

#include "check.h"
#include <cublas_v2.h>

struct smcu_exec {
    sm_block_desc d;
    cublasHandle_t blas;
    int64_t max_tok, n_ctx;      // tokens per run; positions of the KV cache and rope tables
    float *buf[SM_BUF_COUNT];    // [max_tok][d.rows[b]]
    float *s;                    // attention scores [max_tok][n_ctx]
    float *scale;                // [max_tok]: 1 / rms of each token
    float *rope[4];              // cos, sin, and the windowed layers' cos, sin: [n_rot/2][n_ctx]
};

// Called at each SM_OP_OBSERVE with the input group `in` (sm_linear_input), n_tok rows of `cols`
// device floats: 0 goes on, > 0 stops the block (returned), -1 fails.
typedef int (*smcu_observer)(void *user, int in, const float *x, int64_t n_tok, int64_t cols);

// The executor for runs of up to max_tok tokens (buffers, cuBLAS handle, rope tables from dims).
int smcu_exec_init(smcu_exec *e, const sm_cuda_dims *dims, int64_t max_tok);
void smcu_exec_free(smcu_exec *e);
// The floats a layer tensor of role `role` has (0: not one of this block's).
int64_t smcu_exec_role_size(const smcu_exec *e, int role);
// 0 if every tensor the block's operations read is present in w (biases and norms whose role
// is optional may be NULL), else an error naming the role.
int smcu_exec_ready(const smcu_exec *e, float *const *w, int64_t layer);
// One block over the n tokens in buf[SM_BUF_X] at positions pos0.., layer `layer`'s weights w
// (indexed by role) and KV cache kc, vc ([n_head_kv][n_ctx][head_dim] each). Keys and values of
// every token are stored; after that only tokens [from, n) are carried on.
int smcu_exec_block(smcu_exec *e, float *const *w, float *kc, float *vc, int64_t layer, int64_t n, int64_t pos0,
                    int64_t from, smcu_observer obs, void *user);
// y = RMSNorm(x) * w over n tokens of d.rows[SM_BUF_X] features (the model's output norm).
void smcu_exec_norm(smcu_exec *e, const float *x, const float *w, float *y, int64_t n);
// x *= s over n floats; x = cap * tanh(x / cap) over n floats.
void smcu_scale(float *x, int64_t n, float s);
void smcu_softcap(float *x, int64_t n, float cap);
// y (n x rows, token-major) = x (n x cols) W^T (+ y with accumulate), W row-major rows x cols.
int smcu_linear(cublasHandle_t blas, const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                bool accumulate);

#endif

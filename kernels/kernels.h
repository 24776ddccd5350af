/* kernels.h - compute kernels: CPU feature detection and run-time dispatch, the matrix
 * products the runtime is built on, and the optional CUDA backend (present when built with
 * CUDA: a dlopen'ed plugin built beside smelt; every entry point has a CPU path). */
#ifndef SMELT_KERNELS_H
#define SMELT_KERNELS_H

#include "core/core.h"

typedef enum sm_isa { SM_ISA_SCALAR = 0, SM_ISA_AVX2 = 1, SM_ISA_AVX512 = 2 } sm_isa;
/* One instruction-set selector for the whole program: the matrix kernels and vector math,
 * the codecs, the converter's casts and GPTQ's GEMM all run on sm_isa_active().
 *   sm_cpu_isa_hw(): the best ISA this CPU supports;
 *   sm_cpu_isa():    that, capped by the environment variable SMELT_ISA=scalar|avx2|avx512
 *                    (an unknown value is ignored with a warning on stderr);
 *   sm_isa_active(): the ISA in use, sm_cpu_isa() unless sm_isa_set() chose a lower one;
 *   sm_isa_set():    caps the request at sm_cpu_isa() and returns the ISA now in effect (for
 *                    tests and benchmarks; not to be called while other threads compute).
 * Every SIMD path handles a length that is not a multiple of its width with masked or
 * zero-padded vectors, never with a different formula, so an element's bits do not depend
 * on where it falls in a vector. Codecs, casts and GPTQ's GEMM give the same bits on every
 * ISA; the float kernels (sums in another order, exp approximations) agree to rounding. */
sm_isa sm_cpu_isa_hw(void);
sm_isa sm_cpu_isa(void);
sm_isa sm_isa_active(void);
sm_isa sm_isa_set(sm_isa isa);
const char *sm_isa_name(sm_isa isa);
/* "scalar", "avx2", "avx512" -> *out (0), else -1. */
int sm_isa_parse(const char *name, sm_isa *out);

/* 1 if a CUDA device can be used (built with CUDA and a device is present), else 0.
 * *why, if non-NULL, gets a short reason when 0. */
int sm_cuda_available(const char **why);

/* ======================================================================================
 * Matrix products (runtime section)
 * ==================================================================================== */

/* True if weights of `type` with rows of n_in elements can be used in sm_matmul: F32, F16,
 * BF16, and the block types whose dequantizer exists, with n_in a multiple of the block. */
bool sm_matmul_supported(sm_type type, int64_t n_in);

/* Convert n elements (a whole number of blocks) of a weight row of `type` to float. */
int sm_row_to_f32(sm_type type, const void *src, float *dst, int64_t n);

/* Y = W · X with activations stored feature-major ("transposed"): row k of X holds
 * feature k of every token, tokens contiguous. For r < n_out and t < n_tok:
 *     y[r*ldy + t] = sum over k < n_in of W[r][k] * x[k*ldx + t]
 * W is n_out rows of n_in elements of `wtype`, row r at (const char *)w + r*w_stride.
 * x and y are float and must not overlap. Weights are converted to float a block at a time
 * into small per-thread buffers, never as a whole. Batches of >= 8 tokens run as
 * register-tiled matrix products that read x and write y in place (no packing); smaller
 * ones as dot products.
 *
 * Determinism: each output element is computed by one thread in a fixed order that does
 * not depend on the thread count or on which rows a thread got, so results are
 * bit-identical for any number of threads (they may differ between ISAs, and between a
 * batch of >= 8 tokens and a smaller one).
 *
 * sm_matmul runs on all OpenMP threads; sm_matmul_serial on the calling thread only (for
 * callers that parallelize over something else). Both return -1 for an unsupported type. */
int sm_matmul(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in,
              const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy);
int sm_matmul_serial(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in,
                     const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy);

/* Several products of the same activations in one pass of the threads (the rows of all of
 * them are shared out together: one synchronisation instead of one per product), each
 * either storing (y = W·X) or accumulating (y += W·X, e.g. a residual connection). The
 * outputs must not overlap x or each other. */
typedef struct sm_matmul_op {
    sm_type wtype;
    const void *w;
    size_t w_stride;
    int64_t n_out;
    float *y;
    int64_t ldy;
    bool accumulate;
    /* batches of fewer than 8 tokens (matrix-vector products: generation): weights of Q4_0,
     * Q8_0, Q4_K, Q5_K and Q6_K are multiplied as ggml does, with each token's activations
     * quantized per block to 8 bits (Q8_0 or Q8_K) and integer dot products; the same bits on
     * every ISA and thread count, but not those of the exact float path (false: the default),
     * which other types, larger batches and non-finite activations always take */
    bool int_dot;
} sm_matmul_op;
int sm_matmul_many(const sm_matmul_op *ops, int n_ops, int64_t n_in, const float *x, int64_t ldx, int64_t n_tok);

/* Element-wise math with the same ISA dispatch (results may differ between ISAs by an ulp
 * or two, never between threads, batch sizes or positions in the array: the tails are
 * masked/padded vectors): x[i] = exp(x[i]); g[i] = g[i] / (1 + exp(-g[i])) * u[i]. */
void sm_vec_exp(float *x, int64_t n);
void sm_vec_silu_mul(float *g, const float *u, int64_t n);

/* ======================================================================================
 * The decoder block as data (model/block_desc.c builds it from the architecture table and the
 * hyperparameters). Every backend's block is an executor of this one description: the CPU
 * (model/forward.c), the CUDA forward and the CUDA calibration pass (kernels/cuda/block_exec.cu,
 * calibration = the same executor with an observer). A block feature is implemented once per
 * backend as an operation here; no backend names an architecture or a tensor of one.
 * ==================================================================================== */

/* A tensor role of the block (a norm, a linear, a bias; model-wide ones for the embedding and
 * head), the index of its weights in an executor's table. */
typedef enum sm_cuda_tensor {
    SM_CT_TOK_EMBD, SM_CT_OUTPUT, SM_CT_OUTPUT_NORM,                 /* model-wide (layer -1) */
    SM_CT_ATTN_NORM, SM_CT_FFN_NORM,                                 /* per layer */
    SM_CT_WQ, SM_CT_WK, SM_CT_WV, SM_CT_WO, SM_CT_GATE, SM_CT_UP, SM_CT_DOWN,
    SM_CT_BQ, SM_CT_BK, SM_CT_BV, SM_CT_BO, SM_CT_BGATE, SM_CT_BUP, SM_CT_BDOWN,
    SM_CT_Q_NORM, SM_CT_K_NORM,                                      /* per-head q/k RMSNorm weights [head_dim] */
    SM_CT_POST_ATTN_NORM, SM_CT_POST_FFW_NORM,                       /* SM_FEAT_POST_NORMS */
    SM_CT_COUNT
} sm_cuda_tensor;

/* The block's activation buffers (per token: X, XN n_embd; Q, ATT q width; K, V kv width;
 * GATE, UP n_ff features). */
typedef enum sm_block_buf { SM_BUF_X, SM_BUF_XN, SM_BUF_Q, SM_BUF_K, SM_BUF_V, SM_BUF_ATT, SM_BUF_GATE, SM_BUF_UP,
                            SM_BUF_COUNT } sm_block_buf;

typedef enum sm_block_opcode {
    SM_OP_NORM,      /* dst[0] = RMSNorm(src) * w[0] (n_embd features) */
    SM_OP_OBSERVE,   /* the observer sees src as the linear input group `in` (model.h sm_linear_input) */
    SM_OP_LINEAR,    /* dst[i] = W[w[i]] src + bias b[i] (if present) for i < n_out; accumulate: dst[i] += */
    SM_OP_HEAD_NORM, /* per-head RMSNorm of Q with w[0] and of K with w[1] (if present) */
    SM_OP_ROPE,      /* Q and K rotated at their positions (the first n_rot dimensions of each head) */
    SM_OP_KV_STORE,  /* K and V into the layer's cache; afterwards only the tokens whose outputs are wanted */
    SM_OP_ATTENTION, /* dst[0] = causal attention of Q over the cache (scale, soft-cap, the layer's window) */
    SM_OP_ADD,       /* dst[0] += src */
    SM_OP_GLU,       /* dst[0] = act(dst[0]) * src (act: the description's) */
    SM_OP_MOE,       /* dst[0] += the routed experts' weighted SwiGLU of src (SM_FEAT_MOE; CPU only) */
} sm_block_opcode;

#define SM_BLOCK_MAX_OPS 24
#define SM_ROLE_NONE 0xff

typedef struct sm_block_op {
    uint8_t op, src, in, n_out, accumulate;
    uint8_t dst[3], w[3], b[3]; /* buffers; tensor roles (sm_cuda_tensor, SM_ROLE_NONE: none) */
} sm_block_op;

enum { SM_ACT_SILU, SM_ACT_GELU_TANH };

typedef struct sm_block_desc {
    int n_ops;
    sm_block_op ops[SM_BLOCK_MAX_OPS];
    int act;                        /* SM_ACT_* of SM_OP_GLU */
    int64_t rows[SM_BUF_COUNT];     /* features per token of each buffer */
    int64_t role_n[SM_CT_COUNT];    /* floats of each role's tensor (0: not used by this block) */
    int64_t n_head, n_head_kv, head_dim, n_rot;
    bool rope_neox;                 /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    float rms_eps;
    float attn_scale;               /* q.k scale */
    float attn_softcap;             /* > 0: scores soft-capped, cap * tanh(s / cap) */
    int64_t window;                 /* sliding window of the layers of swa_pattern (0: none) */
    int swa_pattern;                /* layer l is windowed when swa_pattern > 0 and l % swa_pattern < swa_pattern - 1 */
    bool swa_rope;                  /* the windowed layers rotate with the second rope tables */
    float embd_scale;               /* embeddings multiplied by it (0: not scaled) */
    float final_softcap;            /* > 0: logits soft-capped */
} sm_block_desc;

/* Layer l uses the sliding window (and, with swa_rope, the second rope tables). */
static inline bool sm_block_swa_layer(const sm_block_desc *d, int64_t l) {
    return d->swa_pattern > 0 && l % d->swa_pattern < d->swa_pattern - 1;
}

/* ======================================================================================
 * CUDA decoder (kernels/cuda/forward.cu over kernels/cuda/block_exec.cu; runtime section)
 *
 * A decoder held on the device in float (weights are dequantized on the host and uploaded as
 * F32; products are cuBLAS SGEMMs), its blocks run by the executor of an sm_block_desc.
 * Activations are token-major on the device. The code lives in the CUDA plugin (kernels/cuda/,
 * loaded by kernels/cuda_loader.c); without it every function fails with a message saying so.
 * ==================================================================================== */

typedef struct sm_cuda_dims {
    int64_t n_vocab, n_embd, n_layer;
    int64_t n_ctx;                   /* KV cache positions (rope table length) */
    const sm_block_desc *block;      /* the decoder block (copied) */
    /* host rope tables [n_rot/2][n_ctx] (cos, sin; the CPU's own, scaling and factors applied), and
     * the windowed layers' second pair (block->swa_rope; else NULL); copied */
    const float *rope_cos, *rope_sin, *rope_cos_swa, *rope_sin_swa;
} sm_cuda_dims;

typedef struct sm_cuda_net sm_cuda_net;
int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out);
/* Copy n floats (a matrix row-major [out][in], or a vector) to the device as tensor `which`
 * of `layer` (-1 for the model-wide ones). Biases and q/k norms are optional (the block applies
 * what was uploaded); everything else is required. */
int sm_cuda_net_upload(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *host, int64_t n);
/* Like sm_model_eval (the caller checks positions and token ids). */
int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                     float *logits);
void sm_cuda_net_free(sm_cuda_net *net);

/* ======================================================================================
 * CUDA GPTQ (kernels/cuda/gptq.cu; quantize section)
 *
 * The double-precision linear algebra of GPTQ on the device: cuBLAS DSYRK for the Hessian,
 * cuSOLVER's Cholesky and a triangular solve for the inverse factor, DGEMMs for the lazy-batch
 * updates and the loss report. The per-column quantization (the grids) stays on the host:
 * each lazy batch fetches its columns, the host quantizes them, and the device applies the
 * batch's error to the columns beyond it. Matrices are row-major on the host side of every
 * call. Results agree with the CPU path to rounding (different summation order), and are
 * repeatable on a given GPU (cuBLAS is deterministic for a fixed device and stream).
 * ==================================================================================== */

/* S = sum over tokens of x x^T, n x n, in device memory. */
typedef struct sm_cuda_syrk sm_cuda_syrk;
int sm_cuda_syrk_new(int64_t n, sm_cuda_syrk **out);
/* Add n_tok rows (row t at x + t*ld, n floats; finite: the caller checks). */
int sm_cuda_syrk_add(sm_cuda_syrk *s, const float *x, int64_t n_tok, int64_t ld);
/* Copy S to host (n x n row-major, both triangles). */
int sm_cuda_syrk_read(sm_cuda_syrk *s, double *host);
/* Copy the per-column sums of |x| over the tokens added (n doubles; AWQ's activation
 * statistics), summed per add in token order like the CPU observer's (calib/gptq_run.c). */
int sm_cuda_syrk_read_abs(sm_cuda_syrk *s, double *host);
void sm_cuda_syrk_free(sm_cuda_syrk *s);

/* Lower Cholesky factor of a (n x n row-major, symmetric positive definite) and its inverse:
 * linv = L^-1 (row-major, upper part zero) with a = L L^T. On a failed pivot, *bad gets the
 * 0-based column and -1 is returned (else *bad = -1). */
int sm_cuda_cholesky_inverse(const double *a, int64_t n, double *linv, int64_t *bad);

/* One factored inverse Hessian on the device: U (n x n upper factor, quantization order) and,
 * when a loss report is wanted, H (n x n, original order; may be NULL). */
typedef struct sm_cuda_gptq sm_cuda_gptq;
int sm_cuda_gptq_new(int64_t n, const double *U, const double *H, sm_cuda_gptq **out);
/* Upload the working weights W (rows x n row-major) for one quantization pass. */
int sm_cuda_gptq_load(sm_cuda_gptq *g, const double *W, int64_t rows);
/* Copy columns [c0, c1) of the device's working weights into W (rows x n row-major host). */
int sm_cuda_gptq_fetch(sm_cuda_gptq *g, int64_t c0, int64_t c1, double *W);
/* W[:, i2:] -= E U[i1:i2, i2:], E rows x (i2 - i1) with row stride lde (host). */
int sm_cuda_gptq_update(sm_cuda_gptq *g, int64_t i1, int64_t i2, const double *E, int64_t lde);
/* *out = sum of (D H) .* D for D (m x n row-major host), i.e. tr(D H D^T). Needs H. */
int sm_cuda_gptq_loss(sm_cuda_gptq *g, const double *D, int64_t m, double *out);
void sm_cuda_gptq_free(sm_cuda_gptq *g);

/* ======================================================================================
 * CUDA calibration block (kernels/cuda/calib_block.cu over block_exec.cu; calibration section)
 *
 * One decoder block at a time on the device, for layer-by-layer calibration (smelt gptq
 * --device cuda): the block's float weights are uploaded (and replaced by their quantized
 * versions as GPTQ proceeds); each sample's residual stream (n_tok x n_embd floats, token-
 * major, host) is uploaded, run through the block at positions 0.. up to a stop point while
 * the observed linear inputs are added to device Hessians, and a full pass writes the block's
 * output back to the host. The same arithmetic as the CPU block in float (sums in another
 * order: equal to rounding).
 * ==================================================================================== */

/* The observed inputs, in the order of model.h's sm_linear_input. */
enum { SM_CUDA_IN_ATTN, SM_CUDA_IN_ATTN_OUT, SM_CUDA_IN_FFN, SM_CUDA_IN_FFN_DOWN, SM_CUDA_IN_COUNT };

typedef struct sm_cuda_block sm_cuda_block;
/* d->n_ctx is the most tokens a sample has (and the rope tables' length); n_vocab and n_layer
 * are not used. */
int sm_cuda_block_new(const sm_cuda_dims *d, sm_cuda_block **out);
/* Upload a block tensor (norms, weights row-major [out][in], biases, q/k norms; host NULL removes
 * an optional one: a bias or a q/k norm). */
int sm_cuda_block_set(sm_cuda_block *b, sm_cuda_tensor which, const float *host, int64_t n);
/* The model layer the block's weights are of (0 until set): its sliding window and rope tables. */
int sm_cuda_block_set_layer(sm_cuda_block *b, int64_t layer);
/* Run one sample: h[SM_CUDA_IN_*] (NULL entries, or h NULL: not observed) accumulate the
 * observed inputs; stop_at (an SM_CUDA_IN_* index) ends the pass once that input is fed and
 * returns 1, leaving x unchanged; -1 runs the whole block and writes its output to x (0). */
int sm_cuda_block_run(sm_cuda_block *b, float *x, int64_t n_tok, int stop_at, sm_cuda_syrk *const *h);
void sm_cuda_block_free(sm_cuda_block *b);

/* cuBLAS DGEMM's rate on n x n x n products (reps of them after a warm-up), in GFLOP/s: the
 * device's double-precision peak that benchmarks report GPTQ's speed against. */
int sm_cuda_dgemm_rate(int64_t n, int reps, double *gflops);

#endif

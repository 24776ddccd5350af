/* quantize.h - ggml-compatible codecs, recipes and importance weights.
 *
 * Every block type's bytes are identical to ggml's reference quantizer on the same floats
 * (without importance weights) and to ggml's weighted search with them. */
#ifndef SMELT_QUANTIZE_H
#define SMELT_QUANTIZE_H

#include "core/core.h"

#include <regex.h>

/* True if sm_quantize_rows can produce `type` (F32/F16/BF16 included). */
bool sm_quantize_supported(sm_type type);
/* True if the codec needs importance weights to be any good (ggml: IQ2/IQ1 families). */
bool sm_quantize_requires_imatrix(sm_type type);

/* Quantize nrows rows of n_per_row floats into dst (sm_type_row_bytes(type, n_per_row)
 * bytes per row). imatrix: NULL or n_per_row importance weights. Uses all threads; the
 * output does not depend on the thread count. Returns bytes written, 0 on error.
 * Errors (sm_error): a row length that is not a whole number of blocks; for block types a
 * NaN/Inf input (named by row and column; ggml would assert), an importance weight that is
 * negative or not finite, or values so large that a block's f16 scale overflows. F32, F16
 * and BF16 are plain conversions (NaN/Inf pass through, as in ggml). dst must be 2-byte
 * aligned (GGUF tensor data is). Q8_0 ignores imatrix, as ggml does. */
size_t sm_quantize_rows(sm_type type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix);
/* Dequantize n elements (a whole number of blocks) of any supported type to float. */
int sm_dequantize_row(sm_type type, const void *src, float *dst, int64_t n);

/* ======================================================================================
 * GPTQ (Frantar et al. 2022): error-feedback quantization of a linear layer's weight
 * against the Hessian H = 2/n sum x x^T of its calibration inputs.
 *
 * Use (the calibration driver): one sm_hessian per distinct linear input (q/k/v share the
 * attention input, gate/up the MLP input); add every calibration token's input row to it;
 * sm_gptq_prepare once per Hessian (it factors H^-1); sm_gptq_quantize each weight that reads
 * that input. Everything is double precision, multi-threaded, and bit-identical for any
 * thread count and any ISA (scalar / AVX2 / AVX-512). Memory: the Hessian cols^2 doubles;
 * sm_gptq_prepare cols^2 doubles more (factored in place into the kept factor); sm_gptq_quantize about
 * 2 x rows x cols doubles.
 * ==================================================================================== */

/* Hessian accumulator: S = sum over tokens of x x^T in double (each product of two floats is
 * exact in double; sums run in token order), H = 2/n S. */
typedef struct sm_hessian sm_hessian;
/* NULL (sm_error) if cols is out of range or memory is short. */
sm_hessian *sm_hessian_new(int64_t cols);
/* The same, accumulating on `device`: SM_DEVICE_CUDA keeps S in GPU memory (cuBLAS DSYRK; the
 * sums then follow cuBLAS's order, equal to the CPU's up to rounding) until the matrix is taken
 * or merged. NULL (sm_error) when no CUDA device is usable: no silent fallback. */
sm_hessian *sm_hessian_new_on(int64_t cols, sm_device device);
/* Add n_tok input rows; row t is x[t*ld .. t*ld+cols) (ld >= cols). Non-finite values are
 * refused. */
int sm_hessian_add(sm_hessian *h, const float *x, int64_t n_tok, int64_t ld);
/* The same for feature-major input (the CPU runtime's activations): token t's column j is
 * x[j*ld + t] (ld >= n_tok). S is the same as from the token-major rows. CPU accumulators only. */
int sm_hessian_add_feature_major(sm_hessian *h, const float *x, int64_t n_tok, int64_t ld);
/* Add another accumulator's tokens (same cols), e.g. one collected on another device. The
 * sum is S_h + S_other: equal to one accumulator over all tokens up to rounding. */
int sm_hessian_merge(sm_hessian *h, const sm_hessian *other);
int64_t sm_hessian_cols(const sm_hessian *h);
int64_t sm_hessian_tokens(const sm_hessian *h);
/* Finalize: H = 2/n S as a full symmetric cols x cols row-major matrix, computed in place
 * (no second cols^2 buffer), owned by h and valid until sm_hessian_free. Tokens can no longer
 * be added or merged afterwards. All zeros when no token was added. NULL (sm_error) only if
 * a device accumulator cannot be read back. */
const double *sm_hessian_matrix(sm_hessian *h);
void sm_hessian_free(sm_hessian *h);
/* A CUDA Hessian's device accumulator (NULL on the CPU, or once read back), for device code
 * that adds activations already in GPU memory (sm_cuda_block_run); it reports the tokens it
 * added with sm_hessian_count. */
struct sm_cuda_syrk *sm_hessian_device(sm_hessian *h);
void sm_hessian_count(sm_hessian *h, int64_t n_tok);
/* A device accumulator's per-column sums of |x| over the tokens it added on the device (AWQ's
 * activation statistics), read back with S by sm_hessian_matrix; NULL before that, and for a
 * CPU accumulator. */
const double *sm_hessian_device_abs_sums(const sm_hessian *h);

typedef struct sm_gptq_opts {
    /* The grid. SM_TYPE_INVALID: the integer grid of HF GPTQ checkpoints (bits, group_size,
     * sym); otherwise a GGUF block type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K or Q6_K
     * (blocks along each row; bits, group_size, sym, static_groups are ignored). */
    sm_type gguf_type;
    int bits;            /* 2, 3, 4 or 8 */
    int group_size;      /* columns per group, or -1: one group per row */
    bool sym;            /* symmetric (zero point 2^(bits-1)) or asymmetric */
    bool v1_zero;        /* asymmetric: keep zero points >= 1, so that the "gptq" (v1)
                            checkpoint format, which stores zero-1, can hold them */
    bool act_order;      /* quantize columns in order of decreasing H diagonal (desc_act);
                            HF grid only */
    bool static_groups;  /* group parameters fitted on the original weights before GPTQ */
    double damp;         /* dampening: damp * mean(diag H) is added to the diagonal */
    int block_size;      /* lazy-batch width (columns) */
    bool use_importance; /* GGUF grids: fit block scales with ggml's importance-weighted
                            rule, importance = diag H (else ggml's reference rule) */
    bool skip_loss;      /* do not compute the loss report (saves two GEMMs) */
    int fit_passes;      /* GGUF grids: sweeps, each after the first fitting the block scales on
                            the values the previous one quantized, the best per row kept by
                            its Hessian-weighted error; 0: 2 for Q2_K and Q3_K, else 1 */
    sm_device device;    /* SM_DEVICE_CUDA: the factorization, the lazy-batch updates and the
                            loss report run on the GPU (the grids stay on the CPU); results
                            equal the CPU's up to rounding. Fails if no device is usable. */
} sm_gptq_opts;

/* True if GPTQ has a grid for this GGUF type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K, IQ4_NL, IQ4_XS). */
bool sm_gptq_has_grid(sm_type t);

/* Defaults: HF grid, 4 bits, group 128, sym, damp 0.01, block 128, use_importance. */
void sm_gptq_opts_default(sm_gptq_opts *o);

/* The factored inverse Hessian of one input, reusable for every weight that reads it. It keeps
 * a pointer to H (the loss report uses it): H must stay valid and unchanged while p is used. */
typedef struct sm_gptq_hinv sm_gptq_hinv;
/* Dead columns (diag 0) get diag 1, dampening is added, act_order's permutation is taken
 * (o->act_order, o->damp are used). -1 (sm_error) if H is not positive definite after
 * dampening. */
int sm_gptq_prepare(const double *H, int64_t cols, const sm_gptq_opts *o, sm_gptq_hinv **out);
void sm_gptq_hinv_free(sm_gptq_hinv *p);

typedef struct sm_gptq_result {
    int64_t rows, cols;
    float *deq;          /* W-hat [rows, cols], original column order (exactly what the
                            checkpoint / GGUF blocks decode to) */
    /* HF integer grid (NULL for GGUF grids) */
    uint8_t *codes;      /* [rows, cols] integer codes 0..2^bits-1, original column order */
    int64_t n_groups;
    uint16_t *scales;    /* f16 bits [n_groups, rows] */
    int32_t *zeros;      /* [n_groups, rows] the real zero points (gptq_v2 convention):
                            w-hat = scale * (code - zero) */
    int32_t *g_idx;      /* [cols] the group of each input column */
    int32_t *perm;       /* [cols] act-order: perm[k] = original column quantized k-th; NULL
                            without act-order */
    /* GGUF grids (NULL for the HF grid) */
    void *packed;        /* rows * sm_type_row_bytes(type, cols) bytes, ggml's block layout */
    size_t packed_bytes;
    /* report: tr((W - W-hat) H (W - W-hat)^T) with the undampened H, i.e. 2/n ||(W-W-hat) X||^2,
     * for round-to-nearest on the same grid and for GPTQ (0 with skip_loss) */
    double loss_rtn, loss_gptq;
    double seconds;      /* GPTQ proper (without the loss report) */
} sm_gptq_result;

/* Quantize W [rows, cols] (row-major floats, cols == the Hessian's) with the grid, group and
 * batch options of o (act-order and dampening are p's, from sm_gptq_prepare). res is filled
 * (free it with sm_gptq_result_free). -1 (sm_error) on a bad option, act-order with a GGUF
 * type, a non-finite weight, a scale beyond f16 or out of memory; res is then empty. */
int sm_gptq_quantize(const sm_gptq_hinv *p, const float *W, int64_t rows, const sm_gptq_opts *o,
                     sm_gptq_result *res);
void sm_gptq_result_free(sm_gptq_result *r);
/* The loss report's measure for any quantized weight Q of W (both [rows, cols] float, H the
 * full cols x cols matrix): tr((W - Q) H (W - Q)^T), blocked GEMMs on the CPU. */
int sm_gptq_proxy_loss(const double *H, int64_t cols, const float *W, const float *Q, int64_t rows, double *out);

/* ======================================================================================
 * Recipes (recipe.c): quantization mixtures, i.e. which type each tensor gets.
 *
 * Follows llama.cpp's llama-quant.cpp rules (per-tensor categories, "more bits" layers for
 * attn_v / ffn_down in the _M recipes, output/tied embedding to Q6_K, fallbacks when a row
 * length is not a multiple of the block size), plus user overrides.
 * ==================================================================================== */

typedef struct sm_recipe {
    const char *name;      /* "Q4_K_M" */
    int ftype;             /* llama_ftype number, written as general.file_type */
    sm_type default_type;  /* the base type of the mixture */
    const char *summary;
} sm_recipe;

/* Case-insensitive lookup of a recipe or alias ("q4_k" = Q4_K_M, as llama-quantize). */
const sm_recipe *sm_recipe_find(const char *name);
/* Names of all recipes, comma-separated, for messages. */
const char *sm_recipe_names(void);

#define SM_RECIPE_MAX_RULES 32

typedef struct sm_recipe_rule {
    regex_t re;
    sm_type type;   /* SM_TYPE_INVALID for --keep (leave in source precision) */
    char *pattern;
} sm_recipe_rule;

/* What the mixture needs to know about the model, and its running counters. Counters
 * advance as tensors are planned, so plan every tensor once, in file order. */
typedef struct sm_recipe_plan {
    const sm_recipe *recipe;
    int64_t n_head, n_head_kv; /* for n_gqa (attn_v rules) */
    int n_layer;
    int n_expert;              /* the model's expert count ({arch}.expert_count; 0: dense) */
    bool llama_70b;            /* llama.cpp's LLM_TYPE_70B: llama arch, 80 layers, GQA */
    bool has_imatrix;
    bool pure;                 /* every quantizable tensor gets the default type (no mixture) */
    sm_type output_type;       /* SM_TYPE_INVALID: by the rules */
    sm_type token_embd_type;   /* SM_TYPE_INVALID: by the rules */
    int n_rules;
    sm_recipe_rule rules[SM_RECIPE_MAX_RULES]; /* first match wins */
    /* set by sm_recipe_plan_begin from the tensor names */
    int n_attention_wv;
    bool tied_embeddings;
    /* running counters */
    int i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    int n_fallback;
} sm_recipe_plan;

/* What llama-quantize's rules read of the model besides its tensor names. n_expert > 0 (a
 * mixture of experts, {arch}.expert_count): llama.cpp's expert rules (attn_v/attn_k/attn_output
 * of 8-expert models, attn_v of 4+ experts in the 1-2 bit i-quants, feed-forward layers told by
 * the block number in the name). */
typedef struct sm_recipe_model {
    const char *arch;
    int64_t n_layer, n_head, n_head_kv, n_expert;
} sm_recipe_model;

/* Initialise a plan for a model with these tensor names (GGUF names, file order). */
int sm_recipe_plan_begin(sm_recipe_plan *p, const sm_recipe *r, const char *const *names, size_t n_names,
                         const sm_recipe_model *m, bool has_imatrix);
/* Add `--tensor-type REGEX=TYPE` (type NULL: `--keep REGEX`). */
int sm_recipe_add_rule(sm_recipe_plan *p, const char *regex, const char *type_name);
/* The type for one tensor (shape outermost-first; cur_type: its type in the source). Returns
 * cur_type for tensors that are not quantized (1-D, norms, --keep). *fallback is set when the
 * row length forced a fallback type. SM_TYPE_INVALID (sm_error): an expert model's feed-forward
 * tensor without a block number in [0, n_layer) in its name, which llama.cpp refuses too. */
sm_type sm_recipe_tensor_type(sm_recipe_plan *p, const char *name, int n_dims, const int64_t *shape,
                              sm_type cur_type, bool *fallback);
/* True when a tensor of this type, in this recipe, must have importance weights (llama.cpp). */
bool sm_recipe_requires_imatrix(const sm_recipe_plan *p, const char *name, sm_type type);
void sm_recipe_plan_free(sm_recipe_plan *p);

#endif

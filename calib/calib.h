/* calib.h - validation of a model against text: perplexity and KL divergence, with
 * llama.cpp's protocol (tools/perplexity/perplexity.cpp) so the numbers are comparable.
 *
 * Perplexity: the token sequence (the whole text tokenized once, with BOS when the vocabulary
 * adds one) is cut into consecutive, non-overlapping chunks of n_ctx tokens (a shorter tail
 * is dropped; at least 2*n_ctx tokens are needed). Each chunk is evaluated on its own from
 * position 0 with its first token replaced by BOS (when the vocabulary adds BOS), and only
 * the second half is scored: for j = n_ctx/2 .. n_ctx-2 the score is
 * -log softmax(logits[j])[chunk[j+1]], the log-softmax taken in double from float logits.
 * ppl = exp(mean score); its standard error is ppl * sqrt((E[s^2] - E[s]^2) / (count - 1)).
 *
 * KL divergence: a base run (save_logits) stores, for every scored position, the base
 * model's log-probabilities of the whole vocabulary, compressed to 16 bits each. A later run
 * of another model (kld_base) evaluates the same tokens and reports, per scored position,
 * KL(base || model), the change of the probability of the right token, and whether both
 * models rank the same token first; and over all positions the mean and percentiles of
 * these and the perplexities of both models. The statistics are computed as llama.cpp's
 * --kl-divergence computes them.
 *
 * The log-probability file is byte-compatible with llama.cpp's --kl-divergence-base file
 * (either tool can read the other's), all little-endian:
 *     char[8]  "_logits_"
 *     int32    n_ctx
 *     int32    n_vocab
 *     int32    n_chunk
 *     int32    tokens[n_chunk * n_ctx]            the evaluated tokens (before BOS replacement)
 *     then for each chunk, for each of its n_ctx - 1 - n_ctx/2 scored positions, a record of
 *     nv = 2*((n_vocab + 1)/2) + 4 uint16:
 *         float    scale                          (uint16 0..1 of the record)
 *         float    min_log_prob                   (uint16 2..3)
 *         uint16   q[n_vocab] (+1 padding if odd) log p[v] ~= min_log_prob + scale * q[v]
 *     where max_logit is the largest logit, min_logit = max(smallest logit, max_logit - 16),
 *     scale = (max_logit - min_logit) / 65535, min_log_prob = min_logit - max_logit -
 *     log(sum exp(logit - max_logit)) and q[v] = round((logit[v] - min_logit) / scale) for
 *     logits above min_logit, else 0 (q is all 0 when scale is 0).
 *
 * Every statistic is computed per position in parallel and summed in position order, so
 * the results do not depend on the thread count (on the CPU device, the logits do not either). */
#ifndef SMELT_CALIB_H
#define SMELT_CALIB_H

#include "model/model.h"
#include "quantize/quantize.h"

/* ======================================================================================
 * Importance matrices (imatrix_file.c, imatrix_collect.c) in llama.cpp's file formats.
 *
 * An importance matrix holds, for every linear layer's weight, the sum over calibration tokens
 * of the squared input activation per input column (`sums`) and how many tokens were summed
 * (`counts`, one per expert matrix; 1 matrix for dense models). Two file formats, both read and
 * written: GGUF (`<name>.in_sum2` F32 [n_mat][n_per_row], `<name>.counts` F32 [n_mat][1],
 * general.type = "imatrix", imatrix.datasets / chunk_count / chunk_size), and the legacy `.dat`
 * (int32 n_entries; per entry int32 name_len, name, int32 ncall, int32 nval,
 * float values[nval] = mean * ncall; then optional int32 chunk_count, int32 len, dataset).
 * ==================================================================================== */

typedef struct sm_imatrix_entry {
    char *name;          /* weight tensor name, e.g. "blk.0.attn_q.weight" */
    int64_t n_values;    /* n_mat * n_per_row */
    int64_t n_mat;       /* number of matrices (experts); 1 for dense */
    float *sums;         /* n_values: GGUF in_sum2, or legacy values (mean * ncall) */
    int64_t *counts;     /* n_mat token counts (legacy: {ncall}) */
    float *weights;      /* n_values: the importance used for quantization (mean square) */
} sm_imatrix_entry;

typedef struct sm_imatrix {
    size_t n_entries;
    sm_imatrix_entry *entries; /* sorted by name */
    size_t n_datasets;
    char **datasets;
    int32_t chunk_count, chunk_size;
    bool legacy;
} sm_imatrix;

/* Read either format (detected by the GGUF magic). Weights are computed as llama-quantize
 * does: GGUF sums / count per matrix (1 where count is 0); legacy values / ncall. */
int sm_imatrix_load(const char *path, sm_imatrix *out);
/* The importance weights for a tensor with rows of n_per_row (matrix `mat` for experts),
 * or NULL (with an sm_error) if there is no entry or its size differs. */
const float *sm_imatrix_find(const sm_imatrix *m, const char *tensor_name, int64_t n_per_row, int64_t mat);
/* For a (dense) tensor about to be quantized: *out gets its importance weights, or NULL where
 * the matrix need not have them (tensors outside the blocks: llama-imatrix collects
 * output.weight only with --process-output; a wrong-sized token_embd.weight is ignored, as
 * llama-quantize does). An entry of the wrong size is an error, as in llama-quantize, and so
 * is a block tensor with no entry (the matrix was made for another model); the message names
 * `path` and the tensor. */
int sm_imatrix_for_tensor(const sm_imatrix *m, const char *path, const char *tensor_name, int64_t n_per_row,
                          const float **out);
/* The same for a tensor of n_mat matrices (a 3-D expert tensor [n_mat, rows, n_per_row]): *out
 * holds n_mat * n_per_row weights, expert x's at *out + x * n_per_row. */
int sm_imatrix_for_experts(const sm_imatrix *m, const char *path, const char *tensor_name, int64_t n_per_row,
                           int64_t n_mat, const float **out);
/* Add an entry (copies; name must be new); used by the calibration collector and tests. */
int sm_imatrix_add(sm_imatrix *m, const char *name, int64_t n_mat, int64_t n_per_row, const float *sums,
                   const int64_t *counts);
int sm_imatrix_add_dataset(sm_imatrix *m, const char *dataset);
/* Write in llama.cpp's GGUF imatrix format, or legacy .dat. Atomic. */
int sm_imatrix_save_gguf(const sm_imatrix *m, const char *path);
int sm_imatrix_save_dat(const sm_imatrix *m, const char *path);
void sm_imatrix_free(sm_imatrix *m);

typedef struct sm_ppl_opts {
    int64_t n_ctx;           /* tokens per chunk (<= 0: 512) */
    int64_t n_chunks;        /* evaluate at most this many chunks (<= 0: all) */
    int64_t n_batch;         /* tokens per forward batch (<= 0 or > n_ctx: n_ctx) */
    int32_t bos_id;          /* replaces each chunk's first token; -1: chunks start as they are */
    const char *save_logits; /* perplexity: also write the log-probability file here */
    bool quiet;              /* no progress bar */
    sm_device device;        /* SM_DEVICE_CPU (default) or SM_DEVICE_CUDA */
    bool int_dot;            /* sm_context_set_int_dot on the evaluated model's context (batches < 8) */
} sm_ppl_opts;

/* Order statistics of per-position values (llama.cpp's percentile interpolation). */
typedef struct sm_dist {
    double min, p01, p1, p5, p10, p25, median, p75, p90, p95, p99, p999, max;
} sm_dist;

typedef struct sm_ppl_result {
    int64_t n_ctx, n_chunks, n_scored;  /* n_scored = n_chunks * (n_ctx - 1 - n_ctx/2) */
    double ppl, ppl_stderr, mean_nll;
    double *chunk_nll;                  /* mean score of each chunk (n_chunks values, malloc'ed) */
    double seconds, tokens_per_second;  /* evaluated tokens (n_chunks * n_ctx) per second */

    /* sm_kl_divergence only */
    bool has_kld;
    double ppl_base, ppl_base_stderr;
    double ln_ppl_ratio, ln_ppl_ratio_stderr, ppl_ratio, ppl_ratio_stderr;
    double delta_ppl, delta_ppl_stderr; /* ppl - ppl_base */
    double ppl_correlation;             /* of ln ppl and ln ppl_base */
    double kld_mean, kld_stderr;
    sm_dist kld;
    double dp_mean, dp_stderr;          /* dp = p(right token) - p_base(right token) */
    sm_dist dp;
    double rms_dp, rms_dp_stderr;
    double top1_agreement, top1_stderr; /* fraction of positions where both argmaxes agree */
} sm_ppl_result;

/* The BOS id to put first in every chunk for this tokenizer: its BOS when the vocabulary
 * adds BOS, else -1. Fails for a vocabulary that adds EOS (llama.cpp refuses those too). */
int sm_ppl_chunk_bos(const sm_tokenizer *t, int32_t *bos);

/* Perplexity of `m` over tokens (see above). */
int sm_perplexity(const sm_model *m, const int32_t *tokens, int64_t n_tokens, const sm_ppl_opts *o,
                  sm_ppl_result *r);
/* KL divergence of `m` against the log-probability file base_path; the chunks, context size
 * and tokens come from the file (o->n_ctx is ignored; o->n_chunks limits the chunks). */
int sm_kl_divergence(const sm_model *m, const char *base_path, const sm_ppl_opts *o, sm_ppl_result *r);
/* KL divergence of `m` against a base model evaluated on the same tokens, chunked as for
 * perplexity (o->n_ctx): the base's log-probabilities are compressed exactly as a saved file
 * would hold them, so the statistics equal a --save-logits / --kld run's. */
int sm_kl_divergence_models(const sm_model *m, const sm_model *base, const int32_t *tokens, int64_t n_tokens,
                            const sm_ppl_opts *o, sm_ppl_result *r);
void sm_ppl_result_free(sm_ppl_result *r);

/* The log-probability file, read (bounds-checked; the data stay mmapped). */
typedef struct sm_logits_file {
    sm_mmap map;
    int32_t n_ctx, n_vocab, n_chunk;
    const unsigned char *tokens;  /* int32 little-endian, n_chunk * n_ctx */
    const unsigned char *records; /* n_chunk * (n_ctx - 1 - n_ctx/2) records of nv uint16 */
    int64_t nv;                   /* uint16 per record */
} sm_logits_file;
int sm_logits_file_open(const char *path, sm_logits_file *f);
/* Validate a log-probability file held in memory (used by the fuzz target). */
int sm_logits_file_parse(const char *name, const void *data, size_t size, sm_logits_file *f);
void sm_logits_file_close(sm_logits_file *f);

/* ======================================================================================
 * Calibration (calibration section): calibration sets, importance matrices, GPTQ.
 * ==================================================================================== */

/* Tokenize a whole text file as llama.cpp's tools do: one string, BOS first when the
 * vocabulary adds one (SM_TOK_ADD_SPECIAL), special-token text parsed only on request.
 * *ids is malloc'ed. */
int sm_calib_tokenize_file(const sm_tokenizer *t, const char *path, bool parse_special, int32_t **ids, size_t *n);

typedef struct sm_calib_opts {
    int64_t n_samples; /* samples to cut; <= 0: as many as fit without overlap (n_tokens / seqlen) */
    int64_t seqlen;    /* tokens per sample (>= 2) */
    bool in_order;     /* consecutive chunks from the start (llama-imatrix's cut; at most
                          n_tokens / seqlen of them) instead of random windows */
    uint64_t seed;     /* random windows: the generator's seed */
} sm_calib_opts;

/* n_samples sequences of seqlen tokens, sample k at tokens + k*seqlen. Each is a window of the
 * text whose first token is replaced by `bos` (unless bos < 0), as llama-imatrix and
 * llama-perplexity start their chunks. Random windows start at offsets drawn uniformly from
 * [0, n_tokens - seqlen] by a seeded splitmix64 generator: the same seed gives the same set
 * everywhere (windows may overlap). */
typedef struct sm_calib_set {
    int64_t n_samples, seqlen;
    int32_t *tokens;
    int64_t *starts;   /* offset of each window in the text's tokens */
} sm_calib_set;

int sm_calib_cut(const int32_t *tokens, size_t n_tokens, int32_t bos, const sm_calib_opts *o, sm_calib_set *out);
void sm_calib_set_free(sm_calib_set *s);

/* Importance matrix as llama.cpp's llama-imatrix computes it (tools/imatrix/imatrix.cpp):
 * the tokens are cut into consecutive chunks of n_ctx (at least 2*n_ctx tokens are needed;
 * a shorter tail is dropped), each chunk evaluated alone from position 0 with its first token
 * replaced by bos_id (when >= 0). For every linear weight of every block (attn_q/k/v,
 * attn_output, ffn_gate/up/down; with process_output also output.weight, unless the head is
 * tied to the embeddings) the entry holds, per input column, the sum over all evaluated
 * tokens of the squared input activation (accumulated in double, stored as float), and the
 * count of tokens. chunk_count = chunks evaluated, chunk_size = n_ctx, datasets = {dataset}.
 * The result does not depend on the thread count. */
typedef struct sm_imatrix_opts {
    int64_t n_ctx;         /* <= 0: 512 */
    int64_t n_chunks;      /* <= 0: all */
    int32_t bos_id;        /* -1: chunks start as they are (see sm_ppl_chunk_bos) */
    bool process_output;   /* also collect output.weight (llama-imatrix --process-output) */
    const char *dataset;   /* recorded in imatrix.datasets (NULL: none) */
    bool quiet;
    bool no_ppl;           /* skip the perplexity (llama-imatrix --no-ppl): no output head per chunk */
} sm_imatrix_opts;

/* ppl: llama-imatrix's estimate (its "Final estimate: PPL"), the perplexity of the second half
 * of each chunk as llama-perplexity defines it (tokens n_ctx/2+1 .. n_ctx-1 of each chunk
 * scored from the logits of the ones before), shown running on the progress bar; 0 with
 * no_ppl. ppl_stderr as llama.cpp computes it; n_scored the tokens scored. */
typedef struct sm_imatrix_report {
    int64_t n_chunks, n_tokens, n_scored;
    double seconds, tokens_per_second;
    double ppl, ppl_stderr;
} sm_imatrix_report;

/* Fills out (which must be empty: {0}); free it with sm_imatrix_free. CPU contexts only. */
int sm_imatrix_compute(const sm_model *m, const int32_t *tokens, int64_t n_tokens, const sm_imatrix_opts *o,
                       sm_imatrix *out, sm_imatrix_report *rep);

/* ---- GPTQ over a whole model, one decoder block at a time (calib/gptq_run.c) ----
 *
 * The residual stream of every calibration sample is kept in memory (n_samples x seqlen x
 * n_embd floats) and pushed through the model one block at a time. For block l, in the
 * true-sequential order of the GPTQ reference (q,k,v -> o -> gate,up -> down): the block is
 * run over every sample with the linears quantized so far replaced by their quantized
 * weights, stopping at the input of the next group, whose Hessian H = 2/n sum x x^T is
 * accumulated; that group's linears are then quantized against it (q/k/v share one H,
 * gate/up another). Finally the fully quantized block is run over every sample, and its
 * outputs become the next block's inputs. Linears whose type has no GPTQ grid are rounded
 * to nearest with diag(H) as importance weights; they are replaced by their quantized
 * weights in later passes too. */

/* ---- AWQ (calib/awq.c; driven by sm_gptq_run with opts.awq.enabled) ----
 *
 * Per decoder block, one pass of the samples through the block as it is collects, for each
 * linear input (attn_norm(x) -> q/k/v, attention output -> o, ffn_norm(x) -> gate/up,
 * act(gate)*up -> down), its Hessian H and the mean |x| of every input column. For each group
 * of linears sharing an input, s = mean|x|^alpha (clamped to >= 1e-4, divided by
 * sqrt(max s * min s)) for alpha = 0, 1/n_grid, ..., (n_grid-1)/n_grid; the loss of a candidate
 * is the group's output error tr(dW H dW^T) summed over its linears, dW = W - Q(W diag s)
 * diag(1/s) with Q the TARGET grid (the GGUF type each linear is written in, importance
 * diag(H)/s^2, i.e. llama.cpp's weighted rounding on the scaled inputs); the lowest wins (alpha
 * 0, s = 1, is plain round-to-nearest). The groups: q/k/v (1/s folded into attn_norm), o
 * (1/s folded into v's rows; only where v's rows equal o's columns, as AutoAWQ does: with
 * grouped-query attention v feeds several heads and the group is skipped), gate/up (into
 * ffn_norm), down (into up's rows). Then the clip search: for every linear but q and k, each
 * row's groups of 32 columns (the integer grid's groups for an HF target) are clamped to +-max*(1 - i/n_grid), i < clip_points, quantized,
 * and each group keeps the clamp with the lowest error dw_g^T H_gg dw_g. The scaled, clipped
 * weights are then quantized (round-to-nearest with diag(H)/s^2 as importance, or GPTQ with
 * opts.awq.then_gptq, against the Hessian of the scaled inputs, diag(1/s) H diag(1/s)). */
typedef struct sm_awq_opts {
    bool enabled;
    bool then_gptq;      /* GPTQ (true-sequential unless no_true_sequential) on the scaled weights */
    int n_grid;          /* alpha points (default 20) */
    int clip_points;     /* shrink factors 1 - i/n_grid, i < clip_points (default 10); */
    bool no_clip;
    double force_alpha;  /* >= 0: every group uses this alpha, no search (tests); default -1 */
    int int_bits;        /* the integer grid of linears whose type is SM_TYPE_INVALID (an AutoAWQ */
    int int_group;       /* checkpoint): bits (default 4) and columns per group (default 128, -1: a row) */
} sm_awq_opts;
void sm_awq_opts_default(sm_awq_opts *o);

/* One group: the linears reading the same input (cols columns), with their target types. */
typedef struct sm_awq_group {
    int n;
    const float *W[3];
    int64_t rows[3];
    sm_type type[3];
} sm_awq_group;

typedef struct sm_awq_search_report {
    double alpha;              /* the chosen alpha */
    double loss, loss_alpha0;  /* the group's loss with it, and with alpha 0 (round-to-nearest) */
    double loss_lin[3], loss_lin_alpha0[3];
} sm_awq_search_report;

/* s = mean|x|^alpha, clamped and normalised as above. */
void sm_awq_scales(const double *xmean, int64_t cols, double alpha, float *s);
/* Quantize rows x cols floats into `type` (imp: importance or NULL) and decode them into deq;
 * packed (may be NULL) receives the blocks. */
int sm_awq_fake_quant(sm_type type, const float *W, int64_t rows, int64_t cols, const float *imp, void *packed,
                      float *deq);
/* AutoAWQ's asymmetric integer grid (its pseudo_quantize_tensor with zero_point): per row and group
 * of `group` columns (-1: the whole row; it must divide cols), scale = max(max - min, 1e-5) /
 * (2^bits - 1) rounded to f16, zero = clamp(round(-min / scale), 0, 2^bits - 1), code =
 * clamp(round(w / scale) + zero, 0, 2^bits - 1), deq = scale * (code - zero) (the value the
 * checkpoint decodes to, exactly). codes [rows, cols], scales (f16 bits) and zeros [cols/group,
 * rows] may be NULL. */
int sm_awq_int_quant(const float *W, int64_t rows, int64_t cols, int bits, int group, float *deq, uint8_t *codes,
                     uint16_t *scales, int32_t *zeros);
/* sm_awq_fake_quant into `type`, or sm_awq_int_quant with o's integer grid for SM_TYPE_INVALID. */
int sm_awq_grid_quant(const sm_awq_opts *o, sm_type type, const float *W, int64_t rows, int64_t cols, const float *imp,
                      float *deq);
/* The scale search of one group (H and xmean of its unscaled inputs); s (cols) gets the best. */
int sm_awq_search_scale(const double *H, const double *xmean, int64_t cols, const sm_awq_group *g,
                        const sm_awq_opts *o, float *s, sm_awq_search_report *rep);
/* The clip search on W (already scaled; H of the scaled inputs): W is clamped in place. */
int sm_awq_clip(const double *H, int64_t cols, float *W, int64_t rows, sm_type type, const sm_awq_opts *o);

/* What one linear became. */
typedef struct sm_gptq_linear {
    sm_type type;          /* GGUF type; SM_TYPE_INVALID: the HF integer grid */
    bool gptq;             /* false: rounded to nearest (a type without a GPTQ grid) */
    sm_gptq_result res;    /* deq always; packed (+ packed_bytes) for GGUF types; codes, scales,
                              zeros, g_idx for the HF grid; loss_rtn / loss_gptq */
    /* AWQ: the weight quantized is diag(1/row_scale) W diag(col_scale) (NULL: no such scale);
     * the writer divides the tensor feeding the input (attn_norm, ffn_norm, v's or up's rows and
     * bias) by col_scale, and the biases of scaled rows by row_scale. */
    const float *awq_col_scale, *awq_row_scale;
    /* SM_FEAT_MOE: lin[SM_LIN_GATE], [SM_LIN_UP], [SM_LIN_DOWN] stand for the stacks
     * ffn_{gate,up,down}_exps: n_expert results, expert e's in experts[e] (res unused) */
    const sm_gptq_result *experts;
} sm_gptq_linear;

/* SM_FEAT_MOE: what one expert of a block became. Each expert's three matrices are quantized
 * with their own Hessians, from the calibration tokens routed to it (gate/up: those tokens'
 * ffn_norm(x); down: their silu(gate) * up with the expert's quantized gate/up). An expert
 * routed fewer than opts.moe_min_tokens tokens is starved: its matrices are rounded to nearest
 * with diag(H) as importance (with no token at all: without importance, as llama-quantize
 * without an imatrix). */
typedef struct sm_gptq_expert_report {
    int64_t tokens;             /* calibration tokens routed to it */
    bool starved;               /* tokens < moe_min_tokens: rounded to nearest */
    sm_type type[3];            /* gate, up, down */
    bool gptq[3];
    double loss_rtn[3], loss_gptq[3];
} sm_gptq_expert_report;
#define SM_GPTQ_MOE_MIN_TOKENS 128 /* the default of opts.moe_min_tokens */

typedef struct sm_gptq_layer_report {
    double seconds;                  /* the whole block: passes, Hessians, quantization */
    double seconds_forward;          /* of which: the block's forward passes over the samples */
    double seconds_hessian;          /*   accumulating the Hessians (on the CUDA device this is
                                        part of the passes, and 0 here) */
    double seconds_quantize;         /*   factorizations and GPTQ (and the loss reports) */
    sm_type type[SM_LIN_COUNT];
    bool gptq[SM_LIN_COUNT];
    double loss_rtn[SM_LIN_COUNT];   /* tr((W - W-hat) H (W - W-hat)^T) with round-to-nearest */
    double loss_gptq[SM_LIN_COUNT];  /* the same with GPTQ (equal to loss_rtn without a grid); with AWQ
                                        the loss of the result (AWQ [+ GPTQ]) against the original W */
    /* AWQ: per input group (q/k/v, o, gate/up, down) the alpha chosen, -1 where the group was not
     * scaled (o under grouped-query attention); loss_rtn is then alpha 0's loss in the search */
    double awq_alpha[4];
    double seconds_awq;              /* the scale and clip searches */
    int64_t n_expert;                /* SM_FEAT_MOE: the block's experts (its ffn_* entries above unused) */
    sm_gptq_expert_report *experts;  /* n_expert, malloc'ed (freed by sm_gptq_run_report_free) */
} sm_gptq_layer_report;

typedef struct sm_gptq_run_opts {
    sm_gptq_opts q;           /* grid and GPTQ options; q.gguf_type comes from types */
    const sm_type *types;     /* [n_layer][SM_LIN_COUNT] each linear's output type (SM_TYPE_INVALID:
                                 the HF integer grid); NULL: the HF grid everywhere */
    bool no_true_sequential;  /* collect every Hessian of a block in one pass with the
                                 original weights (the GPTQ paper's plain variant) */
    int64_t moe_min_tokens;   /* SM_FEAT_MOE: experts routed fewer calibration tokens are rounded
                                 to nearest (sm_gptq_expert_report); 0: SM_GPTQ_MOE_MIN_TOKENS */
    sm_awq_opts awq;          /* AWQ scaling first (awq.enabled; CPU only, GGUF types only) */
    /* Called once per block when its linears are quantized (lin[i] for sm_linear i; the callee
     * may take ownership of lin[i].res by zeroing it). May be NULL. */
    int (*sink)(void *user, int64_t layer, sm_gptq_linear *lin);
    void *sink_user;
    /* sm_gptq_write_gguf's output (format, split limits; formats/sink.h). NULL: one GGUF. */
    const struct sm_sink_opts *output;
    /* sm_gptq_write_gguf: exact per-tensor types (a size-targeted mixture, sm_target_plan) applied
     * after the recipe, and a metadata hook called before the header is written (both optional) */
    const char *const *plan_names;
    const sm_type *plan_types;
    size_t n_plan;
    void (*add_metadata)(void *user, struct sm_meta *w);
    void *add_metadata_user;
    /* Called with each block's report when it is done (progress). May be NULL. */
    void (*on_layer)(void *user, int64_t layer, int64_t n_layer, const sm_gptq_layer_report *r);
    void *on_layer_user;
    /* How the file was made, recorded in a GGUF output as quantize.gptq.* keys (in the spirit
     * of llama-quantize's quantize.imatrix.*). calib_file NULL: no such keys. */
    struct {
        const char *calib_file;  /* the calibration text's path as given */
        const char *calib_xxh64; /* xxHash64 of its bytes, 16 hex digits */
        int64_t samples, seqlen;
        uint64_t seed;
        bool in_order;
    } provenance;
} sm_gptq_run_opts;

typedef struct sm_gptq_run_report {
    int64_t n_layer, n_samples, seqlen;
    sm_gptq_layer_report *layers;    /* n_layer, malloc'ed */
    double seconds;
    uint64_t activation_bytes;       /* the residual streams kept in memory */
} sm_gptq_run_report;

int sm_gptq_run(const sm_model *m, const sm_calib_set *cs, const sm_gptq_run_opts *o, sm_gptq_run_report *rep);
void sm_gptq_run_report_free(sm_gptq_run_report *r);

/* GPTQ into an ordinary GGUF (calib/gptq_gguf.c). m was loaded from the F32/F16/BF16 GGUF
 * src_path, or from the Hugging Face directory src_path and put in GGUF layout
 * (sm_model_gguf_layout): the directory is then read as the GGUF `smelt convert` writes of it
 * with the weights' own precision (sm_hf_source), with the same result. The recipe ("Q4_K_M", "Q4_0", ...) gives every tensor its type by llama.cpp's
 * rules, as `smelt quantize` does; block linears are quantized by sm_gptq_run on that type's
 * grid (round-to-nearest where there is none), the other tensors converted without importance
 * weights. Metadata: the source's, general.file_type of the recipe, general.quantization_version
 * 2. Model-wide tensors come first, then each block's tensors. */
int sm_gptq_write_gguf(const sm_model *m, const char *src_path, const sm_calib_set *cs, const char *recipe,
                       const char *out_path, const sm_gptq_run_opts *o, sm_gptq_run_report *rep);

/* GPTQ into a Hugging Face GPTQ checkpoint directory (calib/gptq_hf_write.c). m was loaded from
 * the HF directory src_dir. Writes out_dir/model.safetensors (per block linear: qweight,
 * qzeros, scales, g_idx in the "gptq" (v1) layout of formats.h; every other tensor F16),
 * config.json (the source's, with torch_dtype float16 and quantization_config: bits,
 * group_size, desc_act, sym, damp_percent, true_sequential, checkpoint_format) and copies of
 * the tokenizer files. o->q gives the integer grid (bits, group_size, sym, act_order). */
int sm_gptq_write_hf(const sm_model *m, const char *src_dir, const sm_calib_set *cs, const char *out_dir,
                     const sm_gptq_run_opts *o, sm_gptq_run_report *rep);

/* ---- size-targeted mixtures (calib/target.c) ----
 *
 * Choose each quantizable tensor's type among the GGUF types llama.cpp runs (Q2_K..Q6_K and Q8_0
 * for rows that are whole 256-wide super-blocks; Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 for rows of whole
 * 32-blocks, llama-quantize's fallbacks for them) to minimise the predicted loss under a size
 * budget. A budget can stay partly unspent: the plan is the least predicted loss that fits,
 * and where the next step of a large tensor (a 64-wide model's token_embd: Q5_1 to Q8_0) only
 * fits by lowering the others, it usually predicts (and measures) worse. Predicted loss of tensor i at type t:
 *     L_i(t) = s_i * e_i(t) / e_i(probe)
 * where e_i(t) = sum over rows and columns of w_j (x - deq(quant_t(x)))^2, w_j the mean squared
 * input activation of column j on the calibration text (an importance matrix computed in
 * process; 1 for token_embd), and s_i the tensor's sensitivity: with kld_probes, the measured
 * KL divergence against the base (on the calibration text) of the model with only tensor i at
 * the probe type (Q2_K, or Q4_0) and every other quantizable tensor at Q8_0, less that of the
 * all-Q8_0 model; without, s_i = e_i(probe), i.e. the loss is the imatrix-weighted squared
 * error itself. The budget is met with a Lagrangian: each tensor takes argmin L_i(t) + lambda
 * bytes_i(t), lambda bisected to the smallest that fits, and the slack is then spent greedily
 * on the upgrades with the best loss decrease per byte; and with the exact multiple-choice
 * knapsack on sizes rounded up to about 1/(64 n) of the budget, its slack spent the same way
 * (it reaches the plans between the Lagrangian's, e.g. where token_embd is most of the model);
 * the plan with the lower predicted loss is kept. */
typedef struct sm_target_opts {
    double target_bpw;        /* > 0: bits per weight, 8 x tensor bytes / all parameters */
    uint64_t target_bytes;    /* > 0 (and target_bpw 0): the file's size in bytes */
    const char *calib_path;   /* calibration text for sensitivities and error weights */
    const char *imatrix_path; /* importance weights of the final quantization (NULL: none) */
    int64_t n_ctx, n_chunks;  /* chunks of the calibration text evaluated (<= 0: 512, 8) */
    bool kld_probes;          /* measure each tensor's KLD sensitivity (one pass per tensor) */
    bool quiet;
} sm_target_opts;

#define SM_TARGET_MAX_CAND 6
typedef struct sm_target_tensor {
    char *name;
    int64_t n_params;
    int n_cand;
    sm_type cand[SM_TARGET_MAX_CAND];
    uint64_t cand_bytes[SM_TARGET_MAX_CAND];
    double cand_err[SM_TARGET_MAX_CAND];  /* e_i(t) */
    double cand_loss[SM_TARGET_MAX_CAND]; /* L_i(t) */
    int pick;                             /* the chosen candidate */
    double kld_probe;                     /* the probe's measured KLD (kld_probes), else 0 */
} sm_target_tensor;

typedef struct sm_target_plan {
    size_t n;
    sm_target_tensor *t;
    const char **names;       /* n: for sm_quantize_opts plan_names / plan_types */
    sm_type *types;
    uint64_t budget_bytes;    /* for the quantizable tensors */
    uint64_t fixed_bytes;     /* tensors left as they are */
    uint64_t tensor_bytes;    /* all tensors, as chosen */
    int64_t n_params;         /* all tensors */
    double target_bpw, bpw, predicted_loss, kld_q8;
    const char *calib_path;
    bool kld_probes;
    double seconds;
} sm_target_plan;

/* Plan a mixture for the F32/F16/BF16 GGUF base_path. Fails (naming the budget and the
 * smallest and largest mixtures possible) when the budget is out of reach. */
int sm_target_plan_make(const char *base_path, const sm_target_opts *o, sm_target_plan *p);
/* smelt.mixture.* metadata: target_bpw, sensitivity ("kld" or "imatrix"), calib, tensors and
 * types (parallel string arrays). For sm_quantize_opts.add_metadata (user: the plan). */
void sm_target_write_metadata(void *plan, struct sm_meta *w);
void sm_target_plan_free(sm_target_plan *p);

#endif

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

typedef struct sm_ppl_opts {
    int64_t n_ctx;           /* tokens per chunk (<= 0: 512) */
    int64_t n_chunks;        /* evaluate at most this many chunks (<= 0: all) */
    int64_t n_batch;         /* tokens per forward batch (<= 0 or > n_ctx: n_ctx) */
    int32_t bos_id;          /* replaces each chunk's first token; -1: chunks start as they are */
    const char *save_logits; /* perplexity: also write the log-probability file here */
    bool quiet;              /* no progress bar */
    sm_device device;        /* SM_DEVICE_CPU (default) or SM_DEVICE_CUDA */
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

#endif

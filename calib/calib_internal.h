/* calib_internal.h - shared pieces of the perplexity and KL-divergence runs. */
#ifndef SMELT_CALIB_INTERNAL_H
#define SMELT_CALIB_INTERNAL_H

#include "calib.h"

/* uint16 per log-probability record for n_vocab tokens. */
static inline int64_t sm_logits_record_len(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

/* Encode one position's logits as a record (see calib.h); returns the score of token `tok`
 * computed the way llama.cpp computes it while saving (in float). */
double sm_logits_record_encode(const float *logits, int64_t n_vocab, int32_t tok, uint16_t *rec);

/* int32 token i of the file. */
int32_t sm_logits_file_token(const sm_logits_file *f, int64_t i);
/* Record of scored position j of chunk c (unaligned little-endian uint16s). */
const unsigned char *sm_logits_file_record(const sm_logits_file *f, int64_t c, int64_t j);

/* The chunk loop both runs share: evaluate chunk `c` of `tokens` (n_ctx tokens, BOS put
 * first if bos_id >= 0) and leave the logits of positions first..n_ctx-1 in `logits`. */
/* -log softmax(logits)[tok], as llama.cpp's log_softmax (perplexity, imatrix) computes it. */
double sm_token_nll(const float *logits, int64_t n_vocab, int32_t tok);
int sm_eval_chunk(const sm_model *m, sm_context *ctx, const int32_t *chunk, int64_t n_ctx, int32_t bos_id,
                  int32_t *scratch, float *logits);

/* AWQ (awq.c): the scales (if any) the block's 1-D tensor `name` (a GGUF name, blk.N.*) is
 * divided by, so that the block computes the same function with the scaled linears: the norms
 * before q/k/v and gate/up, the biases of the rows of v and up that were divided by the scales
 * of o's and down's inputs. NULL: the tensor is written as it is. */
const float *sm_awq_fold_scale(const char *name, const sm_gptq_linear *lin);

#endif

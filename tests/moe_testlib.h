/* moe_testlib.h - what the mixture-of-experts quantization tests (tests/test_moe*.c) share:
 * tiny expert-model GGUF files written directly (llama.cpp's arch keys and tensor names for
 * Mixtral-style "llama" with experts and for "qwen3moe"), and a synthetic llama-imatrix file
 * with per-expert counts. */
#ifndef SMELT_MOE_TESTLIB_H
#define SMELT_MOE_TESTLIB_H
#include "testlib.h"

#include <stdint.h>

typedef struct tm_moe {
    const char *arch;           /* "llama" (Mixtral converts to it) or "qwen3moe" */
    int n_layer, n_embd, n_head, n_head_kv, head_dim;
    int n_expert, n_expert_used, n_ff_exp, n_vocab;
    /* NULL: random-but-well-scaled weights (rows ~ N(0, 1/cols), a few outliers, norms near 1),
     * no tokenizer. Otherwise a dense llama GGUF (F32, e.g. tiny-llama-kjv converted) whose
     * metadata (tokenizer included), embeddings, norms and attention are copied and whose
     * feed-forward weights, perturbed by `noise` times their RMS per expert, become the experts
     * (n_embd, heads, n_layer and n_ff_exp must match it); the router is random. */
    const char *dense;
    float noise;
    uint64_t seed;
} tm_moe;

/* Writes the F32 GGUF at path; 0 on success (failures recorded). */
int tm_make_moe(const char *path, const tm_moe *c);

/* The random fixtures of the tests: an 8-expert Mixtral-style llama (8 layers, 256 wide, top-2,
 * expert FFN 256, GQA 8/4) and a 6-expert Qwen3-MoE (4 layers, top-2, expert FFN 128, so that
 * ffn_down_exps rows are not a multiple of 256: the k- and i-quant fallbacks). */
extern const tm_moe TM_MIXTRAL, TM_QWEN3MOE;

/* A llama-imatrix GGUF file for the model at `model` (every 2-D and 3-D weight of the blocks):
 * per-expert counts (expert 1 of each expert tensor with count 0, as llama-imatrix leaves an
 * expert no token reached), sums > 0; legacy: the same in the .dat format. 0 on success. */
int tm_make_imatrix(const char *model, const char *path, bool legacy);

#endif

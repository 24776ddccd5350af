/* arch_testlib.h - what the end-to-end architecture tests (tests/test_arch_*.c) share: the 24
 * reference tokens, evaluation, the comparison with a torch reference, GGUF key checks, and the
 * CLI runs (ppl, quantize, imatrix, gptq, llama.cpp's tools) that every architecture goes through. */
#ifndef SMELT_ARCH_TESTLIB_H
#define SMELT_ARCH_TESTLIB_H
#include "testlib.h"

#include "formats/formats.h"

#include <stdbool.h>
#include <stdint.h>

#define TA_T 24                           /* reference tokens */
#define TA_CALIB_TEXT "text/kjv-calib.txt" /* the asset ppl, imatrix and gptq read */

typedef struct ta_arch {
    const char *name;                               /* "qwen3": messages and temporary file names */
    int n_vocab;
    const char *(*make)(void);                      /* the fixture's HF directory, or NULL */
    void (*check_gguf)(const char *path, bool f32); /* the architecture's GGUF checks (f32: converted) */
    double q8_tol, q4_tol; /* quantize: max |logit - f32| for Q8_0 / Q4_K_M, a fraction of the largest logit */
} ta_arch;

/* The reference tokens: 1, then (i * 37 + 11) % n_vocab. */
void ta_tokens(const ta_arch *a, int32_t *toks);
/* Perplexity of tokens[1..T) from the logits of tokens [0, T-1), in double. */
double ta_ppl(const ta_arch *a, const float *logits, const int32_t *toks);
/* The same over n tokens of a V-token vocabulary. */
double ta_ppl_n(const float *logits, const int32_t *toks, int n, int V);
/* The model's logits for the reference tokens (malloc'ed; batches of 7, so that the cache is
 * used across batches), or NULL; checks the model's rope is NEOX. */
float *ta_eval(const ta_arch *a, const char *path);
/* tests/data/REL as T x n_vocab floats (malloc'ed), or NULL (a failure). */
float *ta_reference(const ta_arch *a, const char *rel);
/* logits within 1e-4 of torch's (relative to the largest logit when above 1), ppl within 1e-5 */
void ta_against_torch(const ta_arch *a, const char *what, const float *logits, const float *ref);
/* max |l - base| / max |base| over the reference logits (infinite when l is NULL) */
double ta_drift(const ta_arch *a, const float *l, const float *base);
/* The HF directory against the torch logits, then its F32 GGUF (tl_tmp(gguf_name), a->check_gguf). */
void ta_hf_and_gguf(const ta_arch *a, const char *dir, const float *ref, const char *gguf_name, const char *label);

void ta_check_u32(const sm_gguf *g, const char *key, uint64_t want);
void ta_check_f32(const sm_gguf *g, const char *key, double want);
/* The keys are present in this order (general.file_type may sit at the end after llama-quantize
 * when !f32); vals[i] != 0 are checked as u32. */
void ta_check_key_order(const sm_gguf *g, const char *const *keys, const uint64_t *vals, size_t n, bool f32);
/* The GGUF's first n tensors are named as `order` says. */
void ta_check_tensor_order(const sm_gguf *g, const char *const *order, size_t n);

/* smelt with printf-style arguments must exit 0 (a failure shows its output). */
void ta_smelt_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* `smelt ppl MODEL --ctx 64 --chunks 4 --json` on the calibration text: its ppl (0 on failure). */
double ta_smelt_ppl(const char *model);
/* smelt ppl on the fixture's directory and on its F32 GGUF: the same number. */
void ta_cli_ppl(const ta_arch *a);
/* smelt quantize Q8_0 and Q4_K_M of the F32 GGUF: a->check_gguf, logits within a->q8/q4_tol. */
void ta_quantize(const ta_arch *a);
/* smelt imatrix on the fixture, quantize with it, gptq --to gguf:Q4_0 (checked and evaluated). */
void ta_calibration(const ta_arch *a);
/* The fixture's directory copied to tl_tmp(name) without the tensor `drop`; the copy's path. */
const char *ta_copy_without(const ta_arch *a, const char *name, const char *drop);
/* A copy of directory dir in tl_tmp(name) (path written to out) with config.json edited by a sed
 * expression; out, or NULL on failure. */
const char *ta_edit_config(const char *dir, const char *name, const char *sed, char out[1024]);
/* A copy of the fixture (tl_tmp(name)) with config.json edited by a sed expression: the converter
 * and the runtime refuse it with `msg`. */
void ta_refused_config(const ta_arch *a, const char *name, const char *sed, const char *msg);
/* With --llama-cpp: llama-quantize writes smelt quantize's bytes for each recipe, and
 * llama-perplexity on the F32 GGUF is within 0.5% of smelt ppl. */
void ta_llama_cpp(const ta_arch *a, const char *const *recipes, size_t n_recipes);
/* smelt help convert lists every architecture of the table, and `arch` among them. */
void ta_help_lists_archs(const char *arch);

/* Mixtures of experts: the bytes of `gguf` from offset `from` have this sha256 (that of llama.cpp's
 * convert_hf_to_gguf.py output for the fixture, recorded by the test). */
void ta_same_as_converter(const char *gguf, uint64_t from, const char *sha256);
/* The fixture's HF directory evaluated with an observer and an expert observer: each token routed to
 * n_expert_used experts, their gathered inputs the router's input columns, weights summing to 1;
 * the dense-FFN calibration access and the CUDA context refused with a message. */
void ta_moe_observer(const ta_arch *a);

#endif

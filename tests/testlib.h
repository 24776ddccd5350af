/* testlib.h - a tiny test harness: CHECK macros, assets, running the CLI.
 *
 * Each tests/test_*.c defines `void run_tests(void)` calling TEST(fn) for each case.
 * Assets come from $SMELT_ASSETS (default: the CMake-configured ../shared). A missing asset
 * is a failure, never a skip. */
#ifndef SMELT_TESTLIB_H
#define SMELT_TESTLIB_H

#include "core/core.h"

#include <math.h>
#include <stdio.h>

extern int tl_failures, tl_checks;
extern const char *tl_current;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        tl_checks++;                                                                           \
        if (!(cond)) {                                                                         \
            tl_failures++;                                                                     \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, tl_current, #cond); \
        }                                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        tl_checks++;                                                                           \
        if (!(cond)) {                                                                         \
            tl_failures++;                                                                     \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s: ", __FILE__, __LINE__, tl_current, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double _a = (a), _b = (b), _t = (tol);                                                 \
        tl_checks++;                                                                           \
        if (!(fabs(_a - _b) <= _t)) {                                                          \
            tl_failures++;                                                                     \
            fprintf(stderr, "%s:%d: [%s] CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", __FILE__, \
                    __LINE__, tl_current, #a, _a, #b, _b, _t);                                 \
        }                                                                                      \
    } while (0)

/* The call succeeded (0); prints sm_last_error() otherwise. */
#define CHECK_OK(call)                                                                         \
    do {                                                                                       \
        int _rc = (call);                                                                      \
        tl_checks++;                                                                           \
        if (_rc != 0) {                                                                        \
            tl_failures++;                                                                     \
            fprintf(stderr, "%s:%d: [%s] %s failed: %s\n", __FILE__, __LINE__, tl_current, #call, \
                    sm_last_error());                                                          \
        }                                                                                      \
    } while (0)

/* The call failed (non-zero) and its error message contains `needle`. */
#define CHECK_FAILS_WITH(call, needle) tl_check_fails((call), (needle), #call, __FILE__, __LINE__)

#define TEST(fn)                                                                               \
    do {                                                                                       \
        tl_current = #fn;                                                                      \
        int _before = tl_failures;                                                             \
        double _t0 = sm_now();                                                                 \
        fn();                                                                                  \
        fprintf(stderr, "%s %s (%.2fs)\n", tl_failures == _before ? "ok  " : "FAIL", #fn,       \
                sm_now() - _t0);                                                               \
    } while (0)

void run_tests(void);
void tl_check_fails(int rc, const char *needle, const char *expr, const char *file, int line);

/* Absolute path of an asset under $SMELT_ASSETS (static buffer per call, up to 8 live).
 * Records a failure if it does not exist. */
const char *tl_asset(const char *rel);
/* A fresh temporary directory for this test binary (removed at exit unless SMELT_KEEP_TMP). */
const char *tl_tmpdir(void);
/* tl_tmpdir()/name in a static buffer (up to 8 live). */
const char *tl_tmp(const char *name);
/* Run `$SMELT_BIN <args>` through the shell; returns the exit status; output to *out if non-NULL
 * (malloc'ed, stdout and stderr together). */
int tl_run_smelt(const char *args, char **out);
/* The same with environment assignments ("VAR=value ...") for that command only. */
int tl_run_smelt_env(const char *env, const char *args, char **out);
/* For tl_run_smelt_env: a CUDA plugin that does not exist, i.e. no usable GPU on any machine. */
#define TL_NO_GPU "SMELT_CUDA_PLUGIN=/nonexistent/libsmelt_cuda.so"

/* llama.cpp's bin directory (LLAMA_CPP_BIN) for the comparisons that need it, or NULL (with a
 * note naming `what`). Those comparisons run only when the test binary is started with
 * --llama-cpp: its own ctest entry NAME_llamacpp, which exits 77 (skipped) when LLAMA_CPP_BIN
 * is not set, so that ctest reports them as skipped, never as passed (that entry runs the
 * whole test, the comparisons included). */
const char *tl_llama_cpp_bin(const char *what);

/* `BIN/llama-perplexity -m MODEL -f TEXT -c CTX --chunks CHUNKS -t 2 $LLAMA_PPL_ARGS`: its
 * "Final estimate" PPL, or 0 when no run printed one (its log then goes to stderr; a non-zero
 * exit is a failure). Its asynchronous log loses its last lines at exit in about one run in
 * three: up to eight runs. Every llama-perplexity call of the C tests goes through here. */
double tl_llama_ppl(const char *bin, const char *model, const char *text, int ctx, int chunks);

/* Path of the smelt binary. */
const char *tl_smelt_bin(void);
/* Read a whole file (malloc'ed); NULL on failure. */
char *tl_slurp(const char *path, size_t *len);
/* Two files have the same bytes (false if either cannot be read). */
bool tl_same_file(const char *a, const char *b);
/* Two GGUF files hold the same tensors (names, types, bytes); failures are recorded. */
void tl_check_same_gguf_tensors(const char *a, const char *b);
/* A tiny Qwen2 HF directory in tl_tmpdir() (q/k/v biases, rotate_half rope with theta 1e6, GQA,
 * tied output; weights from the integer recipe of scripts/make_qwen2_reference.py, whose torch
 * logits are in tests/data/qwen2-tiny/), or NULL. */
enum { QW_HIDDEN = 64, QW_HEADS = 4, QW_KV = 2, QW_FF = 96, QW_LAYERS = 2, QW_VOCAB = 2048, QW_HD = 16 };
const char *tl_make_qwen2_tiny(void);
/* A tiny Qwen3 HF directory (Qwen3ForCausalLM config keys and tensor names as transformers
 * saves them: per-head q/k RMSNorm, no biases, head_dim 32 given explicitly so that the
 * attention width (128) differs from hidden_size (64), tied or untied lm_head) with the Qwen2-
 * style BPE tokenizer of tests/data/bpe-qwen2 and a ChatML chat template; weights from the
 * integer recipe of scripts/make_qwen3_reference.py, whose torch logits are in
 * tests/data/qwen3-tiny/. NULL on failure. */
enum { QW3_VOCAB = 679, QW3_HD = 32 };
const char *tl_make_qwen3_tiny(bool tied);
/* A tiny Phi-3 HF directory (Phi3ForCausalLM, Phi-3-mini-4k's config keys, sizes QW_*: fused
 * self_attn.qkv_proj and mlp.gate_up_proj, GQA 4/2 heads of 16, untied lm_head, sliding_window
 * 2047) with the SPM tokenizer.model of models/tiny-llama-kjv (vocabulary 2048) and Phi-3's chat
 * template; weights from the integer recipe of scripts/make_phi3_reference.py, whose torch
 * logits are in tests/data/phi3-tiny/. NULL on failure. */
const char *tl_make_phi3_tiny(void);
/* A tiny Gemma 2 HF directory (Gemma2ForCausalLM config keys and tensor names as transformers
 * saves them: pre/post norms, soft-capping 2.0 / 3.0, sliding_window 8, head_dim 32 =
 * query_pre_attn_scalar, vocabulary 2048 with the tiny-llama-kjv SentencePiece tokenizer as a
 * stand-in, tied output); weights from the integer recipe of scripts/make_gemma2_reference.py,
 * whose torch logits are in tests/data/gemma2-tiny/. NULL on failure (tokenizer asset missing). */
enum { GM2_VOCAB = 2048, GM2_HD = 32, GM2_WINDOW = 8 };
const char *tl_make_gemma2_tiny(void);
/* llama-quantize (in bin) and smelt quantize write the same bytes from src for each recipe
 * (failures recorded); returns how many did. TL_ALL_RECIPES: every recipe both know. */
enum { TL_N_ALL_RECIPES = 16 };
extern const char *const TL_ALL_RECIPES[TL_N_ALL_RECIPES];
size_t tl_same_as_llama_quantize(const char *bin, const char *src, const char *const *recipes, size_t n);
/* A tiny Gemma 3 HF directory (Gemma3ForCausalLM, Gemma3TextConfig's keys: sizes of the Gemma 2
 * fixture, 6 layers (5 sliding with window 8 and the local rope base, the sixth global with linear
 * rope scaling 8), q/k norms, no soft-capping, tied output, the tiny-llama-kjv SPM tokenizer);
 * vlm: the same weights as a Gemma3ForConditionalGeneration checkpoint (text_config, tensors under
 * language_model., a few vision_tower / multi_modal_projector tensors). Weights from the recipe of
 * scripts/make_gemma3_reference.py, whose torch logits are in tests/data/gemma3-tiny/. */
enum { GM3_LAYERS = 6 };
const char *tl_make_gemma3_tiny(bool vlm);
/* Tiny mixture-of-experts HF directories (scripts/make_moe_reference.py, whose torch logits are in
 * tests/data/{mixtral,qwen3moe}-tiny/): Mixtral (MixtralForCausalLM config keys and tensor names:
 * block_sparse_moe.gate, block_sparse_moe.experts.E.w1/w2/w3; sizes QW_*, MX_EXPERTS experts of
 * QW_FF, MX_USED used per token, untied lm_head, the tiny-llama-kjv SPM tokenizer) and Qwen3-MoE
 * (Qwen3MoeForCausalLM: q/k norms, mlp.gate, mlp.experts.E.{gate,up,down}_proj; Q3M_EXPERTS
 * experts of moe_intermediate_size Q3M_FF_EXP, MX_USED used, norm_topk_prob, untied lm_head, the
 * 679-token Qwen2 BPE tokenizer). NULL on failure. */
enum { MX_EXPERTS = 4, MX_USED = 2, Q3M_EXPERTS = 8, Q3M_FF_EXP = 64 };
const char *tl_make_mixtral_tiny(void);
const char *tl_make_qwen3moe_tiny(void);
/* Write bytes to a file; 0 on success. */
int tl_write_file(const char *path, const void *data, size_t len);

#endif

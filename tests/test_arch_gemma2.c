/* test_arch_gemma2.c - Gemma 2 end to end through the architecture table: a tiny
 * Gemma2ForCausalLM (tests/testlib.c tl_make_gemma2_tiny; GELU-tanh gated FFN, (1 + w) RMSNorms,
 * embedding scaled by sqrt(hidden), pre- and post-norms around attention and the FFN, attention-
 * and final-logit soft-capping, query_pre_attn_scalar, sliding-window layers with a window (8)
 * shorter than the 24 reference tokens, tied output, an SPM tokenizer) against the torch reference
 * of scripts/make_gemma2_reference.py (tests/data/gemma2-tiny/: logits of 24 tokens over the
 * whole 2048-token vocabulary, written from transformers' modeling_gemma2.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF carries what llama.cpp's Gemma2Model writes: architecture gemma2, its keys
 *    (key/value_length, attn_logit_softcapping, final_logit_softcapping, attention.sliding_window;
 *    no rope keys), norms + 1 kept F32, post_attention_norm / post_ffw_norm, no output.weight;
 *  - smelt quantize (Q8_0, Q4_K_M) tracks the F32 model; smelt imatrix and smelt gptq run through
 *    the block; the CUDA path refuses the block (its features are CPU-only for now);
 *  - a Gemma 2 checkpoint without a post norm is refused, naming the tensor. */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_gguf(const char *path, bool f32);
static const ta_arch GEMMA2 = {"gemma2", GM2_VOCAB, tl_make_gemma2_tiny, check_gguf, 0.02, 0.25};

static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "gemma2"));
    ta_check_u32(g, "gemma2.context_length", 256);
    ta_check_u32(g, "gemma2.embedding_length", QW_HIDDEN);
    ta_check_u32(g, "gemma2.block_count", QW_LAYERS);
    ta_check_u32(g, "gemma2.feed_forward_length", QW_FF);
    ta_check_u32(g, "gemma2.attention.head_count", QW_HEADS);
    ta_check_u32(g, "gemma2.attention.head_count_kv", QW_KV);
    ta_check_u32(g, "gemma2.attention.key_length", GM2_HD);
    ta_check_u32(g, "gemma2.attention.value_length", GM2_HD);
    ta_check_u32(g, "gemma2.attention.sliding_window", GM2_WINDOW);
    ta_check_f32(g, "gemma2.attn_logit_softcapping", 2.0);
    ta_check_f32(g, "gemma2.final_logit_softcapping", 3.0);
    ta_check_f32(g, "gemma2.attention.layer_norm_rms_epsilon", (double)1e-6f);
    /* Gemma2Model.set_gguf_parameters writes no rope keys and no vocab_size */
    CHECK(sm_gguf_find(g, "gemma2.rope.freq_base") == NULL && sm_gguf_find(g, "gemma2.vocab_size") == NULL &&
          sm_gguf_find(g, "gemma2.rope.dimension_count") == NULL);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "llama"));
    /* Gemma2Model.set_vocab: add_add_space_prefix(False) */
    const sm_gguf_value *asp = sm_gguf_find(g, "tokenizer.ggml.add_space_prefix");
    CHECK(asp && asp->type == SM_GGUF_BOOL && asp->v.u == 0);
    CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(2 + QW_LAYERS * 11));
    static const char *const NORMS[] = {"attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"};
    for (int l = 0; l < QW_LAYERS; l++)
        for (int k = 0; k < 4; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, NORMS[k]);
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == QW_HIDDEN, "%s", n);
        }
    /* the norms carry + 1: the fixture's values are v / 1024 with |v| <= 127 */
    const sm_tensor *on = sm_gguf_find_tensor(g, "output_norm.weight");
    if (on && on->type == SM_TYPE_F32) {
        const float *w = on->data;
        bool shifted = true;
        for (int i = 0; i < QW_HIDDEN; i++) shifted &= w[i] >= 1.0f - 128.0f / 1024 && w[i] <= 1.0f + 128.0f / 1024;
        CHECK_MSG(shifted, "output_norm.weight is not 1 + w");
    }
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.1.attn_q.weight");
    CHECK(q && q->shape[0] == QW_HEADS * GM2_HD && q->shape[1] == QW_HIDDEN && (!f32 || q->type == SM_TYPE_F32));
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) {
        fprintf(stderr, "  (the tiny-llama-kjv tokenizer asset is missing)\n");
        exit(77);
    }
    float *ref = ta_reference(&GEMMA2, "gemma2-tiny/logits_24x2048.f32");
    if (!ref) return;
    ta_hf_and_gguf(&GEMMA2, dir, ref, "gemma2.gguf", "");
    /* the same GGUF through sm_hparams: what llama.cpp's loader derives from the keys */
    sm_gguf *g = NULL;
    sm_hparams hp;
    CHECK_OK(sm_gguf_open(tl_tmp("gemma2.gguf"), &g));
    if (g) {
        CHECK_OK(sm_hparams_from_gguf(g, &hp));
        CHECK(hp.attn_softcap == 2.0f && hp.final_softcap == 3.0f && hp.sliding_window == GM2_WINDOW &&
              hp.swa_pattern == 2 && fabsf(hp.attn_scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
        sm_gguf_close(g);
    }
    free(ref);
}

/* smelt ppl on the HF directory and on its GGUF: the same numbers */
static void cli_ppl(void) { ta_cli_ppl(&GEMMA2); }

static void quantize(void) { ta_quantize(&GEMMA2); }

static void calibration(void) {
    ta_calibration(&GEMMA2);
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) return;
    /* the GPU block does not implement Gemma 2's operations yet: refused, never run without them */
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(dir, NULL, &m));
    if (m) {
        sm_context *c = NULL;
        const int rc = sm_context_new_on(m, SM_DEVICE_CUDA, 64, 0, &c);
        CHECK(rc != 0 && c == NULL);
        sm_context_free(c);
        sm_model_free(m);
    }
}

/* A copy of the fixture without post_feedforward_layernorm of layer 1: refused, naming it */
static void missing_post_norm(void) {
    const char *drop = "model.layers.1.post_feedforward_layernorm.weight";
    const char *bad = ta_copy_without(&GEMMA2, "gemma2-no-postnorm", drop);
    if (!bad) return;
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_FAILS_WITH(sm_convert(bad, tl_tmp("bad.gguf"), &co, NULL), drop);
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), "blk.1.post_ffw_norm.weight is missing");
}

/* With --llama-cpp: llama-quantize writes the same bytes for every recipe, and llama-perplexity
 * on the converted GGUF gives smelt ppl's number within 0.5% */
static void llama_cpp(void) {
    if (tl_llama_cpp_bin("llama-quantize / llama-perplexity on the Gemma 2 GGUF")) /* tl_llama_cpp_bin( marks the entry */
        ta_llama_cpp(&GEMMA2, TL_ALL_RECIPES, TL_N_ALL_RECIPES);
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(missing_post_norm);
    TEST(llama_cpp);
}

/* test_arch_gemma3.c - Gemma 3 text models end to end through the architecture table: a tiny
 * Gemma3ForCausalLM (tests/testlib.c tl_make_gemma3_tiny; Gemma 2's block - GELU-tanh gated FFN,
 * (1 + w) RMSNorms, embedding scaled by sqrt(hidden), pre- and post-norms - with per-head q/k
 * (1 + w) norms, no attention soft-capping, query_pre_attn_scalar, five sliding-window layers
 * (window 8 < the 24 reference tokens) rotating with rope_local_base_freq and a sixth, global one
 * with rope_theta and linear rope scaling 8, tied output, an SPM tokenizer) against the torch
 * reference of scripts/make_gemma3_reference.py (tests/data/gemma3-tiny/: logits of 24 tokens over
 * the whole 2048-token vocabulary, written from transformers' modeling_gemma3.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the same weights as a Gemma3ForConditionalGeneration checkpoint (text_config, tensors under
 *    language_model., vision tower and projector tensors) give the same logits and a GGUF with
 *    the same tensors; the converter says it skipped the vision part;
 *  - the GGUF carries what llama.cpp's Gemma3Model writes, in its order (TextModel's keys with
 *    rope.scaling linear, rope.freq_base_swa, key/value_length; sliding_window; no soft-capping
 *    keys), norms + 1 kept F32, attn_q_norm / attn_k_norm, no output.weight;
 *  - smelt quantize (Q8_0, Q4_K_M) tracks the F32 model; smelt imatrix and smelt gptq run through
 *    the block; the CUDA path refuses the block;
 *  - configs llama.cpp cannot represent are refused (attention soft-capping, another
 *    sliding-window pattern);
 *  - with --llama-cpp: llama-quantize's files equal smelt quantize's, llama-perplexity within 0.5%. */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *make(void) { return tl_make_gemma3_tiny(false); }
static const char *make_vlm(void) { return tl_make_gemma3_tiny(true); }
static void check_gguf(const char *path, bool f32);
/* random weights over 6 layers drift a little more under Q8_0 than the 2-layer fixtures */
static const ta_arch GEMMA3 = {"gemma3", GM2_VOCAB, make, check_gguf, 0.04, 0.25};
static const ta_arch GEMMA3_VLM = {"gemma3-vlm", GM2_VOCAB, make_vlm, check_gguf, 0.02, 0.25};

static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "gemma3"));
    /* Gemma3Model.set_gguf_parameters after TextModel's, in the order convert_hf_to_gguf.py writes */
    static const char *const KEYS[] = {
        "gemma3.block_count", "gemma3.context_length", "gemma3.embedding_length", "gemma3.feed_forward_length",
        "gemma3.attention.head_count", "gemma3.attention.head_count_kv", "gemma3.rope.scaling.type",
        "gemma3.rope.scaling.factor", "gemma3.rope.freq_base", "gemma3.rope.freq_base_swa",
        "gemma3.attention.layer_norm_rms_epsilon", "gemma3.attention.key_length", "gemma3.attention.value_length",
        "general.file_type", "gemma3.attention.sliding_window"};
    const uint64_t VALS[] = {GM3_LAYERS, 256, QW_HIDDEN, QW_FF, QW_HEADS, QW_KV, 0, 0, 0, 0, 0, GM2_HD, GM2_HD, 0,
                             GM2_WINDOW};
    ta_check_key_order(g, KEYS, VALS, sizeof KEYS / sizeof KEYS[0], f32);
    s = sm_gguf_get_str(g, "gemma3.rope.scaling.type");
    CHECK(s && !strcmp(s, "linear"));
    ta_check_f32(g, "gemma3.rope.scaling.factor", 8.0);
    ta_check_f32(g, "gemma3.rope.freq_base", 1e6);
    ta_check_f32(g, "gemma3.rope.freq_base_swa", 1e4);
    CHECK(sm_gguf_find(g, "gemma3.final_logit_softcapping") == NULL &&
          sm_gguf_find(g, "gemma3.attn_logit_softcapping") == NULL && sm_gguf_find(g, "gemma3.vocab_size") == NULL);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "llama"));
    const sm_gguf_value *asp = sm_gguf_find(g, "tokenizer.ggml.add_space_prefix");
    CHECK(asp && asp->type == SM_GGUF_BOOL && asp->v.u == 0);
    /* Gemma3Model.set_vocab adds it after the SentencePiece vocabulary: the last key of the
     * converted file (llama-quantize then appends its own) */
    if (f32) CHECK(!strcmp(sm_gguf_key(g, sm_gguf_n_kv(g) - 1), "tokenizer.ggml.add_space_prefix"));
    CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(2 + GM3_LAYERS * 13));
    static const char *const NORMS[] = {"attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm",
                                        "attn_q_norm", "attn_k_norm"};
    for (int l = 0; l < GM3_LAYERS; l++)
        for (int k = 0; k < 6; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, NORMS[k]);
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == (k < 4 ? QW_HIDDEN : GM2_HD),
                      "%s", n);
            /* the norms carry + 1: the fixture's values are v / 1024 with |v| <= 127 */
            bool shifted = t && t->type == SM_TYPE_F32;
            for (int64_t i = 0; shifted && i < t->shape[0]; i++) {
                const float w = ((const float *)t->data)[i];
                shifted = w >= 1.0f - 128.0f / 1024 && w <= 1.0f + 128.0f / 1024;
            }
            CHECK_MSG(shifted, "%s is not 1 + w", n);
        }
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = make();
    if (!dir) {
        fprintf(stderr, "  (the tiny-llama-kjv tokenizer asset is missing)\n");
        exit(77);
    }
    float *ref = ta_reference(&GEMMA3, "gemma3-tiny/logits_24x2048.f32");
    if (!ref) return;
    ta_hf_and_gguf(&GEMMA3, dir, ref, "gemma3.gguf", "");
    /* the GGUF through sm_hparams: what llama.cpp's loader derives from the keys */
    sm_gguf *g = NULL;
    sm_hparams hp;
    CHECK_OK(sm_gguf_open(tl_tmp("gemma3.gguf"), &g));
    if (g) {
        CHECK_OK(sm_hparams_from_gguf(g, &hp));
        CHECK(hp.attn_softcap == 0 && hp.final_softcap == 0 && hp.sliding_window == GM2_WINDOW &&
              hp.swa_pattern == 6 && hp.rope_theta_swa == 10000.0f && hp.rope_theta == 1e6f &&
              !strcmp(hp.rope_scaling_type, "linear") && hp.rope_scaling_factor == 8.0f &&
              fabsf(hp.attn_scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
        CHECK(sm_swa_layer(&hp, 0) && sm_swa_layer(&hp, 4) && !sm_swa_layer(&hp, 5));
        sm_gguf_close(g);
    }
    free(ref);
}

/* the language model inside a Gemma3ForConditionalGeneration checkpoint: the same model */
static void conditional_generation(void) {
    const char *dir = make_vlm();
    float *ref = ta_reference(&GEMMA3_VLM, "gemma3-tiny/logits_24x2048.f32");
    if (!dir || !ref) {
        free(ref);
        return;
    }
    ta_hf_and_gguf(&GEMMA3_VLM, dir, ref, "gemma3-vlm.gguf", " (ConditionalGeneration)");
    free(ref);
    char text_gguf[1024];
    snprintf(text_gguf, sizeof text_gguf, "%s", tl_tmp("gemma3-text.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(make(), text_gguf, &co, NULL));
    tl_check_same_gguf_tensors(text_gguf, tl_tmp("gemma3-vlm.gguf"));
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "convert %s -o %s --outtype f32", dir, tl_tmp("gemma3-vlm-cli.gguf"));
    CHECK(tl_run_smelt(cmd, &out) == 0);
    CHECK_MSG(out && strstr(out, "4 vision-tower / projector tensors skipped"), "%s", out ? out : "");
    free(out);
}

static void cli_ppl(void) { ta_cli_ppl(&GEMMA3); }

static void quantize(void) { ta_quantize(&GEMMA3); }

static void calibration(void) {
    ta_calibration(&GEMMA3);
    const char *dir = make();
    if (!dir) return;
    /* the GPU block does not implement Gemma 3's operations yet: refused, never run without them */
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(dir, NULL, &m));
    if (m) {
        sm_context *c = NULL;
        CHECK(sm_context_new_on(m, SM_DEVICE_CUDA, 64, 0, &c) != 0 && c == NULL);
        sm_context_free(c);
        sm_model_free(m);
    }
}

static void refusals(void) {
    ta_refused_config(&GEMMA3, "gemma3-attncap", "s/\"attn_logit_softcapping\": null/\"attn_logit_softcapping\": 50.0/",
                   "\"attn_logit_softcapping\" is set");
    ta_refused_config(&GEMMA3, "gemma3-pattern", "s/\"sliding_window_pattern\": 6/\"sliding_window_pattern\": 4/",
                   "\"sliding_window_pattern\": 4");
}

/* transformers 5 writes the rope settings per layer type under rope_parameters (no rope_theta,
 * rope_scaling or rope_local_base_freq at the top): the same model, the same hyperparameters */
#define NESTED_ROPE(full_theta, local_theta, local_type)                                                              \
    "s/\"rope_local_base_freq\": 10000.0, //;s/\"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}, "       \
    "\"rope_theta\": 1000000.0/\"rope_parameters\": {\"full_attention\": {\"factor\": 8.0, \"rope_theta\": " full_theta  \
    ", \"rope_type\": \"linear\"}, \"sliding_attention\": {\"rope_theta\": " local_theta ", \"rope_type\": \"" local_type "\"}}/"
static void rope_parameters(void) {
    const char *dir = make();
    char nested[1024], other[1024], cfg[1100];
    if (!dir) return;
    CHECK(ta_edit_config(dir, "gemma3-rope-params", NESTED_ROPE("1000000.0", "10000.0", "default"), nested) != NULL);
    sm_hparams flat, hp;
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    CHECK_OK(sm_hparams_from_hf_config(cfg, &flat));
    snprintf(cfg, sizeof cfg, "%s/config.json", nested);
    CHECK_OK(sm_hparams_from_hf_config(cfg, &hp));
    CHECK(!strcmp(hp.rope_scaling_type, "linear") && hp.rope_scaling_factor == 8.0f && hp.rope_theta == flat.rope_theta &&
          hp.rope_theta_swa == flat.rope_theta_swa);
    float *ref = ta_reference(&GEMMA3, "gemma3-tiny/logits_24x2048.f32");
    float *l = ta_eval(&GEMMA3, nested);
    if (ref && l) ta_against_torch(&GEMMA3, "nested rope_parameters", l, ref);
    free(ref);
    free(l);
    /* values read from the nested objects, not defaults */
    CHECK(ta_edit_config(dir, "gemma3-rope-params2", NESTED_ROPE("500000.0", "20000.0", "default"), other) != NULL);
    snprintf(cfg, sizeof cfg, "%s/config.json", other);
    CHECK_OK(sm_hparams_from_hf_config(cfg, &hp));
    CHECK(hp.rope_theta == 500000.0f && hp.rope_theta_swa == 20000.0f);
    ta_refused_config(&GEMMA3, "gemma3-rope-params3", NESTED_ROPE("1000000.0", "10000.0", "linear"),
                      "\"sliding_attention\".\"rope_type\": expected \"default\"");
}

static void llama_cpp(void) {
    static const char *const RECIPES[] = {"Q4_K_M", "Q8_0", "Q4_K_S", "Q6_K", "Q2_K", "IQ4_XS"};
    if (tl_llama_cpp_bin("llama-quantize / llama-perplexity on the Gemma 3 GGUF")) /* tl_llama_cpp_bin( marks the entry */
        ta_llama_cpp(&GEMMA3, RECIPES, sizeof RECIPES / sizeof *RECIPES);
}

static void help_lists_archs(void) {
    ta_help_lists_archs("Gemma3ForCausalLM");
    ta_help_lists_archs("Gemma3ForConditionalGeneration");
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(conditional_generation);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(refusals);
    TEST(rope_parameters);
    TEST(llama_cpp);
    TEST(help_lists_archs);
}

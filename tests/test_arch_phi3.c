/* test_arch_phi3.c - Phi-3 end to end through the architecture table: a tiny Phi3ForCausalLM
 * (tests/testlib.c tl_make_phi3_tiny; fused self_attn.qkv_proj and mlp.gate_up_proj, GQA, no
 * biases, rotate_half rope, untied lm_head, the SPM tokenizer.model of tiny-llama-kjv standing
 * in for Phi-3's) against the torch reference of scripts/make_phi3_reference.py
 * (tests/data/phi3-tiny/: logits of 24 tokens over the 2048-token vocabulary, written from
 * transformers' modeling_phi3.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF is what llama.cpp's Phi3MiniModel writes: architecture phi3, its keys in its
 *    order (original context, rope.dimension_count, sliding_window), attn_qkv and the fused
 *    ffn_up kept fused, the SPM tokenizer (pre "default") and the chat template carried;
 *  - smelt quantize (Q8_0, Q4_K_M) runs and the quantized model tracks the F32 one; smelt
 *    imatrix names the fused tensors; smelt gptq quantizes qkv and gate_up as fused linears;
 *  - a partial rotary factor whose rotated size is odd is refused (longrope and Phi-4-mini's
 *    0.75: test_arch_phi4) */
#include "arch_testlib.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static void check_gguf(const char *path, bool f32);
/* random weights of this tiny model drift more under quantization than a trained one's (the
 * files equal llama-quantize's byte for byte, checked for this fixture) */
static const ta_arch PHI3 = {"phi3", QW_VOCAB, tl_make_phi3_tiny, check_gguf, 0.04, 0.3};

/* f32: a converted F32 file (else a quantized one) */
static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "phi3"));
    /* Phi3MiniModel.set_gguf_parameters, in its order (checked against convert_hf_to_gguf.py's
     * output for this fixture) */
    static const char *const KEYS[] = {"phi3.context_length", "phi3.rope.scaling.original_context_length",
                                       "phi3.embedding_length", "phi3.feed_forward_length", "phi3.block_count",
                                       "phi3.attention.head_count", "phi3.attention.head_count_kv",
                                       "phi3.attention.layer_norm_rms_epsilon", "phi3.rope.dimension_count",
                                       "phi3.rope.freq_base", "general.file_type", "phi3.attention.sliding_window"};
    const uint64_t VALS[] = {4096, 4096, QW_HIDDEN, QW_FF, QW_LAYERS, QW_HEADS, QW_KV, 0, QW_HD, 0, 0, 2047};
    ta_check_key_order(g, KEYS, VALS, sizeof KEYS / sizeof KEYS[0], f32);
    CHECK(sm_gguf_find(g, "phi3.vocab_size") == NULL && sm_gguf_find(g, "phi3.rope.scaling.type") == NULL);
    double d = 0;
    CHECK(sm_gguf_get_f64(g, "phi3.rope.freq_base", &d) == 0 && d == 10000);
    CHECK(sm_gguf_get_f64(g, "phi3.attention.layer_norm_rms_epsilon", &d) == 0 && (float)d == 1e-5f);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "llama"));
    s = sm_gguf_get_str(g, "tokenizer.ggml.pre");
    CHECK(s && !strcmp(s, "default"));
    s = sm_gguf_get_str(g, "tokenizer.chat_template");
    CHECK(s && strstr(s, "<|assistant|>"));
    for (int l = 0; l < QW_LAYERS; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
        const sm_tensor *t = sm_gguf_find_tensor(g, n);
        CHECK_MSG(t && t->n_dims == 2 && t->shape[0] == (QW_HEADS + 2 * QW_KV) * QW_HD && t->shape[1] == QW_HIDDEN &&
                      (!f32 || t->type == SM_TYPE_F32),
                  "%s", n);
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
        t = sm_gguf_find_tensor(g, n);
        CHECK_MSG(t && t->n_dims == 2 && t->shape[0] == 2 * QW_FF && t->shape[1] == QW_HIDDEN, "%s", n);
    }
    CHECK(sm_gguf_find_tensor(g, "blk.0.attn_q.weight") == NULL && sm_gguf_find_tensor(g, "blk.0.ffn_gate.weight") == NULL);
    CHECK(sm_gguf_find_tensor(g, "output.weight") != NULL);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(3 + QW_LAYERS * 6));
    if (f32) {
        /* the order convert_hf_to_gguf.py writes for this checkpoint (its safetensors reader lists a
         * file's tensors by HF name): checked against its output for the same files */
        static const char *const ORDER[] = {
            "output.weight", "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight",
            "blk.0.ffn_up.weight", "blk.0.ffn_norm.weight", "blk.0.attn_output.weight", "blk.0.attn_qkv.weight",
            "blk.1.attn_norm.weight", "blk.1.ffn_down.weight", "blk.1.ffn_up.weight", "blk.1.ffn_norm.weight",
            "blk.1.attn_output.weight", "blk.1.attn_qkv.weight", "output_norm.weight"};
        ta_check_tensor_order(g, ORDER, sizeof ORDER / sizeof ORDER[0]);
    }
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = tl_make_phi3_tiny();
    CHECK(dir != NULL);
    float *ref = ta_reference(&PHI3, "phi3-tiny/logits_24x2048.f32");
    if (dir && ref) ta_hf_and_gguf(&PHI3, dir, ref, "phi3.gguf", "");
    free(ref);
}

/* smelt ppl on the HF directory and on its GGUF: the same numbers */
static void cli_ppl(void) { ta_cli_ppl(&PHI3); }

static void quantize(void) { ta_quantize(&PHI3); }

static void refusals(void) {
    /* longrope and partial rotary run (test_arch_phi4); a factor llama.cpp and transformers read differently does not */
    ta_refused_config(&PHI3, "phi3-partial", "s/\"rope_theta\": 10000.0,/\"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.1,/",
                      "\"partial_rotary_factor\": 0.1 gives");
    ta_refused_config(&PHI3, "phi3-no-orig", "/original_max_position_embeddings/d", "missing \"original_max_position_embeddings\"");
}

/* imatrix names the fused tensors (attn_qkv, ffn_up) and quantize uses it; gptq quantizes qkv and
 * gate_up as whole linears (their rows, one Hessian per input) into a GGUF llama.cpp reads; the
 * HF GPTQ target is refused before writing anything */
static void calibration(void) {
    const char *dir = tl_make_phi3_tiny();
    if (!dir) return;
    char cmd[4096], *out = NULL;
    ta_smelt_ok("imatrix %s --text %s -o %s --ctx 64 --chunks 4", dir, tl_asset(TA_CALIB_TEXT), tl_tmp("phi3.imatrix"));
    sm_imatrix im = {0};
    CHECK_OK(sm_imatrix_load(tl_tmp("phi3.imatrix"), &im));
    CHECK(im.n_entries == 4 * QW_LAYERS);
    for (size_t i = 0; i < im.n_entries; i++)
        CHECK_MSG(!strstr(im.entries[i].name, "attn_q.") && !strstr(im.entries[i].name, "ffn_gate"), "%s",
                  im.entries[i].name);
    sm_imatrix_free(&im);
    char f32[1024]; /* tl_tmp's buffers are reused */
    snprintf(f32, sizeof f32, "%s", tl_tmp("phi3-c-src.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, f32, &co, NULL));
    ta_smelt_ok("quantize %s %s Q4_K_M --imatrix %s", f32, tl_tmp("phi3-imat.gguf"), tl_tmp("phi3.imatrix"));
    float *base = ta_eval(&PHI3, f32);
    for (int src = 0; src < 2; src++) {
        char gq[1024];
        snprintf(gq, sizeof gq, "%s", tl_tmp(src ? "phi3-gptq-gguf.gguf" : "phi3-gptq.gguf"));
        ta_smelt_ok("gptq %s --calib %s --samples 4 --seqlen 64 --to gguf:Q4_K_M -o %s", src ? f32 : dir,
                    tl_asset(TA_CALIB_TEXT), gq);
        check_gguf(gq, false);
        float *l = ta_eval(&PHI3, gq);
        const double d = ta_drift(&PHI3, l, base);
        fprintf(stderr, "  phi3 gptq Q4_K_M (%s): max |logit - f32| = %.3g of the largest\n", src ? "GGUF" : "HF", d);
        CHECK(d < 0.3);
        free(l);
    }
    free(base);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 --bits 4 --group 32 --to hf -o %s", dir,
             tl_asset(TA_CALIB_TEXT), tl_tmp("phi3-gptq-hf"));
    out = NULL;
    CHECK(tl_run_smelt(cmd, &out) != 0 && out && strstr(out, "fused linears"));
    free(out);
    snprintf(cmd, sizeof cmd, "test ! -e '%s'", tl_tmp("phi3-gptq-hf"));
    CHECK(system(cmd) == 0);
}

/* contexts beyond the 2047-token sliding window are refused (no window mask) */
static void sliding_window(void) {
    const char *dir = tl_make_phi3_tiny();
    if (!dir) return;
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(dir, NULL, &m));
    if (!m) return;
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 2047, 64, &c));
    sm_context_free(c);
    c = NULL;
    CHECK_FAILS_WITH(sm_context_new(m, 2048, 64, &c), "exceeds the model's sliding attention window (2047)");
    sm_model_free(m);
}

static void help_lists_archs(void) { ta_help_lists_archs("Phi3ForCausalLM"); }

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(sliding_window);
    TEST(refusals);
    TEST(help_lists_archs);
}

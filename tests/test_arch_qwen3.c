/* test_arch_qwen3.c - Qwen3 end to end through the architecture table: a tiny Qwen3ForCausalLM
 * (tests/testlib.c tl_make_qwen3_tiny; per-head q/k RMSNorm, no biases, head_dim 32 given
 * explicitly, the Qwen2-style BPE tokenizer, tied and untied lm_head) against the torch
 * reference of scripts/make_qwen3_reference.py (tests/data/qwen3-tiny/: logits of 24 tokens
 * over the whole 679-token vocabulary, written from transformers' modeling_qwen3.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF is what llama.cpp's Qwen3Model writes: architecture qwen3, key/value_length,
 *    attn_q_norm / attn_k_norm [head_dim] kept F32, output.weight only when untied, the
 *    tokenizer (pre "qwen2") and the chat template carried;
 *  - smelt quantize (Q8_0, Q4_K_M) keeps the q/k norms F32 and the quantized model tracks the
 *    F32 one; smelt imatrix and smelt gptq (GGUF and HF GPTQ targets) run through the block;
 *  - the converter refuses a Qwen3 checkpoint without its q/k norms, naming the tensor;
 *  - smelt help convert lists every architecture of the table. */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static bool g_tied; /* the fixture check_gguf looks at */

static const char *make_untied(void) { return tl_make_qwen3_tiny(false); }
static void check_gguf(const char *path, bool f32);
static const ta_arch QWEN3 = {"qwen3", QW3_VOCAB, make_untied, check_gguf, 0.02, 0.25};

/* f32: a converted F32 file (else a quantized one, whose tensors llama-quantize orders by name) */
static void check_gguf(const char *path, bool f32) {
    const bool tied = g_tied;
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "qwen3"));
    ta_check_u32(g, "qwen3.block_count", QW_LAYERS);
    ta_check_u32(g, "qwen3.embedding_length", QW_HIDDEN);
    ta_check_u32(g, "qwen3.attention.head_count", QW_HEADS);
    ta_check_u32(g, "qwen3.attention.head_count_kv", QW_KV);
    ta_check_u32(g, "qwen3.attention.key_length", QW3_HD);
    ta_check_u32(g, "qwen3.attention.value_length", QW3_HD);
    ta_check_u32(g, "qwen3.context_length", 256);
    CHECK(sm_gguf_find(g, "qwen3.vocab_size") == NULL && sm_gguf_find(g, "qwen3.rope.dimension_count") == NULL);
    double theta = 0;
    CHECK(sm_gguf_get_f64(g, "qwen3.rope.freq_base", &theta) == 0 && theta == 1e6);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "gpt2"));
    s = sm_gguf_get_str(g, "tokenizer.ggml.pre");
    CHECK(s && !strcmp(s, "qwen2"));
    /* tokenizer_config.json says add_prefix_space false, which Qwen2Model/Qwen3Model's set_vocab
     * (conversion/qwen.py) never reads, unlike LlamaModel's: convert_hf_to_gguf.py writes no
     * tokenizer.ggml.add_space_prefix here (smelt wrote it) */
    CHECK(sm_gguf_find(g, "tokenizer.ggml.add_space_prefix") == NULL);
    /* the special ids in gguf-py SpecialVocab's order: tokenizer_config.json's tokens found in
     * tokenizer.json's added_tokens first (eos, pad; its bos_token is null), then config.json's
     * bos_token_id (convert_hf_to_gguf.py's file for this fixture, read back, has this order) */
    static const char *const ids[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                                      "tokenizer.ggml.bos_token_id"};
    ta_check_key_order(g, ids, NULL, 3, true);
    s = sm_gguf_get_str(g, "tokenizer.chat_template");
    CHECK(s && strstr(s, "<|im_start|>assistant"));
    for (int l = 0; l < QW_LAYERS; l++)
        for (int k = 0; k < 2; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.attn_%c_norm.weight", l, k ? 'k' : 'q');
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == QW3_HD, "%s", n);
        }
    CHECK(sm_gguf_find_tensor(g, "blk.0.attn_q.bias") == NULL);
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.1.attn_q.weight");
    CHECK(q && q->shape[0] == QW_HEADS * QW3_HD && q->shape[1] == QW_HIDDEN && (!f32 || q->type == SM_TYPE_F32));
    CHECK((sm_gguf_find_tensor(g, "output.weight") == NULL) == tied);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(2 + !tied + QW_LAYERS * 11));
    if (!tied && f32) {
        /* converted: the order llama.cpp's convert_hf_to_gguf.py writes for this checkpoint (its safetensors
         * reader lists a file's tensors by HF name; the fixture's header and data are in another
         * order): checked against its output for the same files */
        static const char *const ORDER[] = {
            "output.weight", "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight", "blk.0.ffn_gate.weight",
            "blk.0.ffn_up.weight", "blk.0.ffn_norm.weight", "blk.0.attn_k_norm.weight", "blk.0.attn_k.weight",
            "blk.0.attn_output.weight", "blk.0.attn_q_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight",
            "blk.1.attn_norm.weight", "blk.1.ffn_down.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight",
            "blk.1.ffn_norm.weight", "blk.1.attn_k_norm.weight", "blk.1.attn_k.weight", "blk.1.attn_output.weight",
            "blk.1.attn_q_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_v.weight", "output_norm.weight"};
        ta_check_tensor_order(g, ORDER, sizeof ORDER / sizeof ORDER[0]);
    }
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    for (int tied = 1; tied >= 0; tied--) {
        g_tied = tied;
        const char *dir = tl_make_qwen3_tiny(tied);
        CHECK(dir != NULL);
        float *ref = ta_reference(&QWEN3, tied ? "qwen3-tiny/logits_tied_24x679.f32" : "qwen3-tiny/logits_untied_24x679.f32");
        if (dir && ref)
            ta_hf_and_gguf(&QWEN3, dir, ref, tied ? "qwen3-tied.gguf" : "qwen3-untied.gguf", tied ? ", tied" : ", untied");
        free(ref);
    }
    g_tied = false;
}

/* smelt ppl on the HF directory and on its GGUF: the same numbers (same tokens, same logits) */
static void cli_ppl(void) { ta_cli_ppl(&QWEN3); }

/* quantize: q/k norms stay F32; the quantized model's logits track the F32 one's */
static void quantize(void) { ta_quantize(&QWEN3); }

/* imatrix and GPTQ (GGUF and HF GPTQ targets) through the Qwen3 block */
static void calibration(void) {
    ta_calibration(&QWEN3);
    const char *dir = make_untied();
    if (!dir) return;
    ta_smelt_ok("gptq %s --calib %s --samples 4 --seqlen 64 --bits 4 --group 32 --to hf -o %s", dir,
                tl_asset(TA_CALIB_TEXT), tl_tmp("qwen3-gptq-hf"));
    free(ta_eval(&QWEN3, tl_tmp("qwen3-gptq-hf")));
}

/* A copy of the tied fixture without the tensor `drop`: refused by the converter and the runtime,
 * naming it. And the fixture's tensors under a Qwen2 config: q_norm is not a Qwen2 tensor. */
static const char *make_tied(void) { return tl_make_qwen3_tiny(true); }

static void missing_qk_norm(void) {
    const ta_arch tied = {"qwen3", QW3_VOCAB, make_tied, check_gguf, 0, 0};
    const char *dir = make_tied();
    const char *drop = "model.layers.1.self_attn.k_norm.weight";
    const char *bad = ta_copy_without(&tied, "qwen3-no-knorm", drop);
    if (!dir || !bad) return;
    char cmd[4096];
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_FAILS_WITH(sm_convert(bad, tl_tmp("bad.gguf"), &co, NULL), drop);
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), "blk.1.attn_k_norm.weight is missing");

    const char *q2 = tl_tmp("qwen3-as-qwen2");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && sed -i 's/Qwen3ForCausalLM/Qwen2ForCausalLM/' '%s/config.json'",
             q2, dir, q2, q2);
    CHECK(system(cmd) == 0);
    CHECK_FAILS_WITH(sm_convert(q2, tl_tmp("bad2.gguf"), &co, NULL), "is not part of a Qwen2ForCausalLM model");
}

static void help_lists_archs(void) { ta_help_lists_archs("Qwen3ForCausalLM"); }

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(missing_qk_norm);
    TEST(help_lists_archs);
}

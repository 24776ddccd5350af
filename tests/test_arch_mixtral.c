/* test_arch_mixtral.c - Mixtral (MixtralForCausalLM) end to end through the architecture table: a
 * tiny mixture of experts (tests/testlib.c tl_make_mixtral_tiny: 2 layers of 4 experts, 2 used per
 * token, Mixtral's config keys and HF names block_sparse_moe.gate / experts.E.w1,w2,w3, the
 * tiny-llama-kjv SPM tokenizer) against the torch reference of scripts/make_moe_reference.py
 * (tests/data/mixtral-tiny/: logits of 24 tokens, written from transformers' modeling_mixtral.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the F32 GGUF is byte for byte the file llama.cpp's convert_hf_to_gguf.py writes of the fixture
 *    (its sha256, recorded from that converter's output): GGUF llama with expert_count and
 *    expert_used_count, the experts stacked into ffn_{gate,down,up}_exps [4, rows, cols] where
 *    llama.cpp puts them, ffn_gate_inp kept F32, size label "4x324K";
 *  - the expert observer sees each token at its 2 experts with weights summing to 1; the CUDA path
 *    and the dense-FFN calibration access refuse the model;
 *  - a missing expert tensor is named;
 *  - with --llama-cpp: llama-perplexity within 0.5% of smelt ppl on the same GGUF. */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_gguf(const char *path, bool f32);
static const ta_arch MIXTRAL = {"mixtral", QW_VOCAB, tl_make_mixtral_tiny, check_gguf, 0.04, 0.25};

/* sha256 of llama.cpp's convert_hf_to_gguf.py --outtype f32 output for the fixture (directory "mixtral") */
#define LLAMA_CPP_F32_SHA256 "f5be4670fabcbe93aca6bc5dae54784bb5c4d95831c9bbdf1e921095f336ea8e"

static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "llama"));
    static const char *const KEYS[] = {
        "llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
        "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon", "llama.expert_count", "llama.expert_used_count", "general.file_type",
        "llama.vocab_size", "llama.rope.dimension_count"};
    const uint64_t VALS[] = {QW_LAYERS, 256, QW_HIDDEN, QW_FF, QW_HEADS, QW_KV, 0, 0, MX_EXPERTS, MX_USED, 0, QW_VOCAB, QW_HD};
    ta_check_key_order(g, KEYS, VALS, sizeof KEYS / sizeof KEYS[0], f32);
    s = sm_gguf_get_str(g, "general.size_label");
    CHECK_MSG(s && !strcmp(s, "4x324K"), "size label %s", s ? s : "(none)");
    CHECK(sm_gguf_n_tensors(g) == (size_t)(3 + QW_LAYERS * 10));
    for (int l = 0; l < QW_LAYERS; l++) {
        static const struct { const char *n; int64_t r, c; } STACKS[] = {
            {"ffn_gate_exps", QW_FF, QW_HIDDEN}, {"ffn_up_exps", QW_FF, QW_HIDDEN}, {"ffn_down_exps", QW_HIDDEN, QW_FF}};
        char n[64];
        for (int k = 0; k < 3; k++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, STACKS[k].n);
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->n_dims == 3 && t->shape[0] == MX_EXPERTS && t->shape[1] == STACKS[k].r &&
                          t->shape[2] == STACKS[k].c && (!f32 || t->type == SM_TYPE_F32),
                      "%s", n);
        }
        snprintf(n, sizeof n, "blk.%d.ffn_gate_inp.weight", l);
        const sm_tensor *t = sm_gguf_find_tensor(g, n);
        CHECK_MSG(t && t->n_dims == 2 && t->shape[0] == MX_EXPERTS && t->type == SM_TYPE_F32, "%s", n);
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l);
        CHECK(sm_gguf_find_tensor(g, n) == NULL);
    }
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = tl_make_mixtral_tiny();
    if (!dir) {
        fprintf(stderr, "  (the tiny-llama-kjv tokenizer asset is missing)\n");
        exit(77);
    }
    float *ref = ta_reference(&MIXTRAL, "mixtral-tiny/logits_24x2048.f32");
    if (!ref) return;
    ta_hf_and_gguf(&MIXTRAL, dir, ref, "mixtral.gguf", "");
    free(ref);
    ta_same_as_converter(tl_tmp("mixtral.gguf"), 0, LLAMA_CPP_F32_SHA256);
    /* f16: the stacks take the output type, the router stays F32 */
    sm_convert_opts co = {.outtype = "f16", .quiet = true};
    CHECK_OK(sm_convert(dir, tl_tmp("mixtral-f16.gguf"), &co, NULL));
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(tl_tmp("mixtral-f16.gguf"), &g));
    if (g) {
        const sm_tensor *e = sm_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight"), *r = sm_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight");
        CHECK(e && e->type == SM_TYPE_F16 && r && r->type == SM_TYPE_F32);
        sm_hparams hp;
        CHECK_OK(sm_hparams_from_gguf(g, &hp));
        CHECK(hp.n_expert == MX_EXPERTS && hp.n_expert_used == MX_USED && hp.n_ff_exp == QW_FF &&
              (hp.features & SM_FEAT_MOE) && (hp.features & SM_FEAT_MOE_BSM));
        sm_gguf_close(g);
    }
}

static void cli_ppl(void) { ta_cli_ppl(&MIXTRAL); }

static void observer(void) { ta_moe_observer(&MIXTRAL); }

static void refusals(void) {
    const char *bad = ta_copy_without(&MIXTRAL, "mixtral-noexp", "model.layers.1.block_sparse_moe.experts.2.w3.weight");
    if (!bad) return;
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_FAILS_WITH(sm_convert(bad, tl_tmp("mixtral-noexp.gguf"), &co, NULL),
                     "missing tensor \"model.layers.1.block_sparse_moe.experts.2.w3.weight\"");
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), "blk.1.ffn_up_exps.weight/2");
    ta_refused_config(&MIXTRAL, "mixtral-used", "s/\"num_experts_per_tok\": 2/\"num_experts_per_tok\": 5/",
                      "\"num_experts_per_tok\": expected an integer in [1, 4]");
}

static void llama_cpp(void) {
    if (tl_llama_cpp_bin("llama-perplexity on the Mixtral GGUF")) /* tl_llama_cpp_bin( marks the entry */
        ta_llama_cpp(&MIXTRAL, NULL, 0);
}

static void help_lists_archs(void) { ta_help_lists_archs("MixtralForCausalLM"); }

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(observer);
    TEST(refusals);
    TEST(llama_cpp);
    TEST(help_lists_archs);
}

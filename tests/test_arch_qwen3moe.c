/* test_arch_qwen3moe.c - Qwen3-MoE (Qwen3MoeForCausalLM) end to end through the architecture table:
 * a tiny mixture of experts (tests/testlib.c tl_make_qwen3moe_tiny: 2 layers of 8 experts of
 * moe_intermediate_size 64, 2 used per token, norm_topk_prob, per-head q/k norms, Qwen3-30B-A3B's
 * config keys and HF names mlp.gate / mlp.experts.E.{gate,up,down}_proj, the 679-token Qwen2 BPE
 * tokenizer) against the torch reference of scripts/make_moe_reference.py (tests/data/qwen3moe-tiny/,
 * written from transformers' modeling_qwen3_moe.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF carries Qwen2MoeModel's keys in its order (expert_count, expert_used_count after the
 *    norm epsilon, expert_feed_forward_length after general.file_type) and, byte for byte, the tensors
 *    llama.cpp's convert_hf_to_gguf.py writes (the sha256 of its data section, recorded from that
 *    converter's output: the stacks ffn_{down,gate,up}_exps [8, rows, cols] where llama.cpp puts
 *    them, ffn_gate_inp F32);
 *  - the expert observer sees each token at its 2 experts; CUDA and dense-FFN access refuse it;
 *  - configs llama.cpp's qwen3moe graph cannot run are refused (norm_topk_prob false, dense layers);
 *  - with --llama-cpp: llama-perplexity within 0.5% of smelt ppl on the same GGUF. */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_gguf(const char *path, bool f32);
static const ta_arch QWEN3MOE = {"qwen3moe", QW3_VOCAB, tl_make_qwen3moe_tiny, check_gguf, 0.04, 0.25};

/* sha256 of the data section of llama.cpp's convert_hf_to_gguf.py --outtype f32 output for the fixture */
#define LLAMA_CPP_F32_DATA_SHA256 "1b4248e2c52082e6d9907fe133c1ec087a7050d7740b0e3e53824541e1102b7f"

static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "qwen3moe"));
    static const char *const KEYS[] = {
        "qwen3moe.block_count", "qwen3moe.context_length", "qwen3moe.embedding_length",
        "qwen3moe.feed_forward_length", "qwen3moe.attention.head_count", "qwen3moe.attention.head_count_kv",
        "qwen3moe.rope.freq_base", "qwen3moe.attention.layer_norm_rms_epsilon", "qwen3moe.expert_count",
        "qwen3moe.expert_used_count", "qwen3moe.attention.key_length", "qwen3moe.attention.value_length",
        "general.file_type", "qwen3moe.expert_feed_forward_length"};
    const uint64_t VALS[] = {QW_LAYERS, 256, QW_HIDDEN, QW_FF, QW_HEADS, QW_KV, 0, 0, Q3M_EXPERTS, MX_USED, QW3_HD,
                             QW3_HD, 0, Q3M_FF_EXP};
    ta_check_key_order(g, KEYS, VALS, sizeof KEYS / sizeof KEYS[0], f32);
    s = sm_gguf_get_str(g, "general.size_label");
    CHECK_MSG(s && !strcmp(s, "8x162K"), "size label %s", s ? s : "(none)");
    CHECK(sm_gguf_n_tensors(g) == (size_t)(3 + QW_LAYERS * 12));
    static const char *const ORDER[] = {"output.weight", "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down_exps.weight",
                                        "blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight",
                                        "blk.0.ffn_gate_inp.weight", "blk.0.ffn_norm.weight"};
    if (f32) ta_check_tensor_order(g, ORDER, sizeof ORDER / sizeof *ORDER);
    const sm_tensor *t = sm_gguf_find_tensor(g, "blk.1.ffn_gate_exps.weight");
    CHECK(t && t->n_dims == 3 && t->shape[0] == Q3M_EXPERTS && t->shape[1] == Q3M_FF_EXP && t->shape[2] == QW_HIDDEN);
    t = sm_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight");
    CHECK(t && t->type == SM_TYPE_F32 && t->shape[0] == Q3M_EXPERTS);
    if (f32) ta_same_as_converter(path, sm_gguf_data_offset(g), LLAMA_CPP_F32_DATA_SHA256);
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = tl_make_qwen3moe_tiny();
    CHECK(dir != NULL);
    float *ref = ta_reference(&QWEN3MOE, "qwen3moe-tiny/logits_24x679.f32");
    if (!dir || !ref) {
        free(ref);
        return;
    }
    ta_hf_and_gguf(&QWEN3MOE, dir, ref, "qwen3moe.gguf", "");
    free(ref);
}

static void cli_ppl(void) { ta_cli_ppl(&QWEN3MOE); }

static void observer(void) { ta_moe_observer(&QWEN3MOE); }

static void refusals(void) {
    ta_refused_config(&QWEN3MOE, "qwen3moe-nonorm", "s/\"norm_topk_prob\": true/\"norm_topk_prob\": false/",
                      "\"norm_topk_prob\" is false or absent");
    ta_refused_config(&QWEN3MOE, "qwen3moe-dense", "s/\"mlp_only_layers\": \\[\\]/\"mlp_only_layers\": [1]/",
                      "make some layers dense");
    ta_refused_config(&QWEN3MOE, "qwen3moe-noff", "s/\"moe_intermediate_size\": 64,//", "missing \"moe_intermediate_size\"");
}

static void llama_cpp(void) {
    if (tl_llama_cpp_bin("llama-perplexity on the Qwen3-MoE GGUF")) /* tl_llama_cpp_bin( marks the entry */
        ta_llama_cpp(&QWEN3MOE, NULL, 0);
}

static void help_lists_archs(void) { ta_help_lists_archs("Qwen3MoeForCausalLM"); }

/* smelt quantize HF_DIR (one pass) writes the file of convert-then-quantize, which
 * test_moe_quantize_llamacpp checks against llama-quantize: with 8 experts llama-quantize's
 * expert rules apply (Q4_K_M: attn_k / attn_v at Q8_0); the one-pass planner was not told the
 * expert count and wrote them at llama.cpp's dense choice */
static void one_pass_quantize(void) {
    const char *dir = QWEN3MOE.make();
    if (!dir) return;
    char f32[1024], one[1024], two[1024];
    snprintf(f32, sizeof f32, "%s", tl_tmp("qwen3moe-1p-f32.gguf"));
    snprintf(one, sizeof one, "%s", tl_tmp("qwen3moe-1p.gguf"));
    snprintf(two, sizeof two, "%s", tl_tmp("qwen3moe-2p.gguf"));
    ta_smelt_ok("convert %s -o %s --outtype f32 -q", dir, f32);
    ta_smelt_ok("quantize %s %s Q4_K_M -q", f32, two);
    ta_smelt_ok("quantize %s %s Q4_K_M -q", dir, one);
    CHECK_MSG(tl_same_file(one, two), "one-pass Q4_K_M differs from convert + quantize");
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(observer);
    TEST(refusals);
    TEST(llama_cpp);
    TEST(help_lists_archs);
    TEST(one_pass_quantize);
}

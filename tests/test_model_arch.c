/* test_model_arch.c - model/: config.json -> hyperparameters, HF <-> GGUF names, the expected
 * tensor list, the q/k rope permutation and llama3 rope factors.
 *
 * Expected values come from the config files themselves, transformers' config defaults,
 * gguf-py's tensor_mapping.py, and LlamaModel.permute / generate_extra_tensors in llama.cpp's
 * converter (worked by hand, or computed once with torch as noted). */
#include "model/model.h"
#include "testlib.h"

#include <string.h>

static int write_config(const char *name, const char *json, sm_hparams *hp) {
    const char *p = tl_tmp(name);
    if (tl_write_file(p, json, strlen(json))) return -2;
    return sm_hparams_from_hf_config(p, hp);
}

static void kjv_config(void) {
    sm_hparams hp;
    CHECK_OK(sm_hparams_from_hf_config(tl_asset("models/tiny-llama-kjv/config.json"), &hp));
    CHECK(!strcmp(hp.hf_arch, "LlamaForCausalLM"));
    CHECK(!strcmp(hp.arch, "llama"));
    CHECK(hp.n_vocab == 2048 && hp.n_embd == 256 && hp.n_ff == 768 && hp.n_layer == 4);
    CHECK(hp.n_head == 8 && hp.n_head_kv == 4 && hp.head_dim == 32 && hp.n_ctx_train == 512);
    CHECK(hp.rope_theta == 10000.0f && hp.rms_eps == 1e-5f);
    CHECK(!hp.tied_embeddings && !hp.qkv_bias && !hp.attn_out_bias && !hp.mlp_bias);
    CHECK(hp.rope_hf_layout && hp.llama_keys && !hp.explicit_head_dim);
    CHECK(hp.rope_scaling_type[0] == 0);
    /* the expected tensors: 3 global + 4 layers x 9 = the README's 39 */
    size_t n = 0;
    char name[64];
    int nd;
    int64_t shape[SM_MAX_DIMS];
    while (sm_arch_tensor(&hp, n, name, sizeof name, &nd, shape) == 1) {
        if (!strcmp(name, "blk.3.attn_k.weight")) CHECK(nd == 2 && shape[0] == 128 && shape[1] == 256);
        if (!strcmp(name, "blk.0.ffn_down.weight")) CHECK(nd == 2 && shape[0] == 256 && shape[1] == 768);
        if (!strcmp(name, "output_norm.weight")) CHECK(nd == 1 && shape[0] == 256);
        if (!strcmp(name, "output.weight")) CHECK(nd == 2 && shape[0] == 2048 && shape[1] == 256);
        n++;
    }
    CHECK(n == 39);
}

/* Qwen3 (Qwen3-8B's config.json): the table row gives arch qwen3, NEOX rope, no permute, no
 * LlamaModel keys, the q/k-norm feature; attention_bias switches q/k/v/o biases on; the
 * expected tensors add attn_q_norm / attn_k_norm [head_dim] per layer (gguf-py QWEN3). */
static void qwen3_table(void) {
    sm_hparams hp;
    CHECK_OK(write_config("qwen3.json",
                          "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
                          "\"bos_token_id\":151643,\"eos_token_id\":151645,\"head_dim\":128,\"hidden_act\":\"silu\","
                          "\"hidden_size\":4096,\"initializer_range\":0.02,\"intermediate_size\":12288,"
                          "\"max_position_embeddings\":40960,\"max_window_layers\":36,\"model_type\":\"qwen3\","
                          "\"num_attention_heads\":32,\"num_hidden_layers\":36,\"num_key_value_heads\":8,"
                          "\"rms_norm_eps\":1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":null,"
                          "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,"
                          "\"use_sliding_window\":false,\"vocab_size\":151936}",
                          &hp));
    CHECK(!strcmp(hp.arch, "qwen3") && !hp.qkv_bias && !hp.attn_out_bias && !hp.rope_hf_layout && !hp.llama_keys);
    CHECK(hp.head_dim == 128 && hp.explicit_head_dim && (hp.features & SM_FEAT_QK_NORM) && !hp.tied_embeddings);
    const sm_arch_info *a = sm_arch_by_gguf("qwen3");
    CHECK(a && a->gguf_rope == SM_ROPE_NEOX && a->features == SM_FEAT_QK_NORM && !strcmp(a->tokenizer_pre, "qwen2"));
    CHECK(sm_arch_by_gguf("qwen2")->gguf_rope == SM_ROPE_NEOX && sm_arch_by_gguf("llama")->gguf_rope == SM_ROPE_NORM);
    CHECK(sm_arch_by_gguf("falcon") == NULL && sm_arch_by_hf("FalconForCausalLM") == NULL);
    size_t n = 0;
    char name[64];
    int nd;
    int64_t shape[SM_MAX_DIMS];
    int qk_norms = 0;
    while (sm_arch_tensor(&hp, n, name, sizeof name, &nd, shape) == 1) {
        if (strstr(name, "_norm.weight") && (strstr(name, "attn_q_norm") || strstr(name, "attn_k_norm")))
            qk_norms += nd == 1 && shape[0] == 128;
        if (!strcmp(name, "blk.35.attn_q.weight")) CHECK(nd == 2 && shape[0] == 4096 && shape[1] == 4096);
        if (!strcmp(name, "blk.35.attn_output.weight")) CHECK(nd == 2 && shape[0] == 4096 && shape[1] == 4096);
        n++;
    }
    CHECK(qk_norms == 2 * 36 && n == 3 + 36 * 11);
    char g[96];
    int flags = 0;
    CHECK(sm_map_hf_name(&hp, "model.layers.7.self_attn.k_norm.weight", g, sizeof g, &flags) == 1);
    CHECK(!strcmp(g, "blk.7.attn_k_norm.weight") && flags == SM_MAP_KEEP_F32);
    CHECK(sm_map_gguf_name(&hp, "blk.7.attn_q_norm.weight", g, sizeof g) == 1 &&
          !strcmp(g, "model.layers.7.self_attn.q_norm.weight"));
    /* attention_bias: true gives q/k/v and o biases */
    CHECK_OK(write_config("qwen3b.json",
                          "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":true,\"hidden_size\":64,"
                          "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":4,\"vocab_size\":10}",
                          &hp));
    CHECK(hp.qkv_bias && hp.attn_out_bias && !hp.mlp_bias && hp.n_ctx_train == 32768);
}

static void qwen2_mistral_defaults(void) {
    sm_hparams hp;
    /* Qwen2: q/k/v biases always, NEOX rope in llama.cpp (no permute), tied embeddings here */
    CHECK_OK(write_config("qwen2.json",
                          "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":151936,\"hidden_size\":896,"
                          "\"intermediate_size\":4864,\"num_hidden_layers\":24,\"num_attention_heads\":14,"
                          "\"num_key_value_heads\":2,\"max_position_embeddings\":32768,\"rope_theta\":1000000.0,"
                          "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,\"sliding_window\":32768,"
                          "\"use_sliding_window\":false,\"rope_scaling\":null}",
                          &hp));
    CHECK(!strcmp(hp.arch, "qwen2") && hp.qkv_bias && !hp.attn_out_bias && !hp.rope_hf_layout && !hp.llama_keys);
    CHECK(hp.head_dim == 64 && hp.n_head_kv == 2 && hp.tied_embeddings && hp.rope_theta == 1e6f);
    CHECK(hp.sliding_window == 0);
    size_t n = 0;
    char name[64];
    int nd;
    int64_t shape[SM_MAX_DIMS];
    bool has_output = false, has_qbias = false;
    while (sm_arch_tensor(&hp, n, name, sizeof name, &nd, shape) == 1) {
        has_output |= !strcmp(name, "output.weight");
        if (!strcmp(name, "blk.23.attn_k.bias")) has_qbias = nd == 1 && shape[0] == 128;
        n++;
    }
    CHECK(!has_output && has_qbias);
    CHECK(n == 2 + 24 * 12);

    /* Mistral: llama arch; missing optional fields take transformers' defaults */
    CHECK_OK(write_config("mistral.json",
                          "{\"architectures\":[\"MistralForCausalLM\"],\"vocab_size\":32000,\"hidden_size\":4096,"
                          "\"intermediate_size\":14336,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
                          "\"num_key_value_heads\":8,\"sliding_window\":4096}",
                          &hp));
    CHECK(!strcmp(hp.arch, "llama") && hp.rope_hf_layout && hp.llama_keys);
    CHECK(hp.rope_theta == 10000.0f && hp.rms_eps == 1e-6f && hp.n_ctx_train == 131072);
    CHECK(hp.sliding_window == 4096 && !hp.tied_embeddings);

    /* explicit head_dim different from hidden/heads */
    CHECK_OK(write_config("headdim.json",
                          "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":100,\"hidden_size\":64,"
                          "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                          "\"head_dim\":32,\"attention_bias\":true,\"mlp_bias\":true}",
                          &hp));
    CHECK(hp.head_dim == 32 && hp.explicit_head_dim && hp.qkv_bias && hp.attn_out_bias && hp.mlp_bias);
    n = 0;
    while (sm_arch_tensor(&hp, n, name, sizeof name, &nd, shape) == 1) {
        if (!strcmp(name, "blk.0.attn_q.weight")) CHECK(shape[0] == 128 && shape[1] == 64);
        if (!strcmp(name, "blk.0.attn_output.weight")) CHECK(shape[0] == 64 && shape[1] == 128);
        n++;
    }
    CHECK(n == 3 + 16);
}

static void rope_scaling(void) {
    sm_hparams hp;
    const char *base = "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":100,\"hidden_size\":64,"
                       "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":4,";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}}", base);
    CHECK_OK(write_config("linear.json", buf, &hp));
    CHECK(!strcmp(hp.rope_scaling_type, "linear") && hp.rope_scaling_factor == 4.0f);

    snprintf(buf, sizeof buf,
             "%s\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":"
             "32768,\"beta_fast\":32,\"attention_factor\":0.5}}",
             base);
    CHECK_OK(write_config("yarn.json", buf, &hp));
    CHECK(!strcmp(hp.rope_scaling_type, "yarn") && hp.rope_scaling_orig_ctx == 32768);
    CHECK(hp.rope_yarn_set == (2 | 4) && hp.rope_yarn_beta_fast == 32.0f && hp.rope_yarn_attn_factor == 0.5f);

    snprintf(buf, sizeof buf, "%s\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0}}", base);
    CHECK_FAILS_WITH(write_config("yarn-bad.json", buf, &hp), "original_max_position_embeddings");
    snprintf(buf, sizeof buf, "%s\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":4.0}}", base);
    CHECK_FAILS_WITH(write_config("longrope.json", buf, &hp), "not supported");

    /* Llama 3.1's rope scaling; factors computed with torch by the converter's own loop
     * (generate_extra_tensors): ids 26..35 of 64 */
    CHECK_OK(write_config("llama3.json",
                          "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":100,\"hidden_size\":4096,"
                          "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":32,"
                          "\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                          "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}",
                          &hp));
    CHECK(!strcmp(hp.rope_scaling_type, "llama3"));
    float f[64];
    CHECK_OK(sm_rope_llama3_factors(&hp, f, 64));
    const float want[10] = {1.0f, 1.0f, 1.0f, 1.2074838876724243f, 1.5534145832061768f, 2.026313066482544f,
                            2.6945300102233887f, 3.684253215789795f, 5.257327079772949f, 8.0f};
    for (int i = 0; i < 10; i++) CHECK_NEAR(f[26 + i], want[i], 2e-6 * want[i]);
    CHECK(f[0] == 1.0f && f[63] == 8.0f);
}

static void config_errors(void) {
    sm_hparams hp;
    CHECK_FAILS_WITH(write_config("gpt2.json", "{\"architectures\":[\"GPT2LMHeadModel\"]}", &hp),
                     "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM");
    CHECK_FAILS_WITH(write_config("noarch.json", "{\"hidden_size\":4}", &hp), "architectures");
    CHECK_FAILS_WITH(write_config("missing.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":10}", &hp),
                     "missing \"hidden_size\"");
    CHECK_FAILS_WITH(write_config("broken.json", "{\"architectures\":[\"LlamaForCausalLM\"", &hp), "invalid JSON");
    CHECK_FAILS_WITH(write_config("neg.json",
                                  "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":-3,\"hidden_size\":64,"
                                  "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":4}",
                                  &hp),
                     "vocab_size");
    CHECK_FAILS_WITH(write_config("gqa.json",
                                  "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":3,\"hidden_size\":64,"
                                  "\"intermediate_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                                  "\"num_key_value_heads\":3}",
                                  &hp),
                     "multiple of num_key_value_heads");
    CHECK_FAILS_WITH(sm_hparams_from_hf_config(tl_tmp("absent.json"), &hp), "cannot open");
}

static void names(void) {
    sm_hparams hp;
    CHECK_OK(sm_hparams_from_hf_config(tl_asset("models/tiny-llama-kjv/config.json"), &hp));
    static const struct { const char *hf, *gguf; int flags; } M[] = {
        {"model.embed_tokens.weight", "token_embd.weight", 0},
        {"lm_head.weight", "output.weight", 0},
        {"model.norm.weight", "output_norm.weight", SM_MAP_KEEP_F32},
        {"model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", SM_MAP_PERMUTE_Q},
        {"model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", SM_MAP_PERMUTE_K},
        {"model.layers.2.self_attn.v_proj.weight", "blk.2.attn_v.weight", 0},
        {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight", 0},
        {"model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight", 0},
        {"model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight", 0},
        {"model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", 0},
        {"model.layers.3.input_layernorm.weight", "blk.3.attn_norm.weight", SM_MAP_KEEP_F32},
        {"model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight", SM_MAP_KEEP_F32},
        {"model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias", SM_MAP_PERMUTE_Q | SM_MAP_KEEP_F32},
    };
    for (size_t i = 0; i < sizeof M / sizeof M[0]; i++) {
        char g[64], h[96];
        int flags = -1;
        CHECK(sm_map_hf_name(&hp, M[i].hf, g, sizeof g, &flags) == 1);
        CHECK_MSG(!strcmp(g, M[i].gguf), "%s -> %s", M[i].hf, g);
        CHECK_MSG(flags == M[i].flags, "%s flags %d", M[i].hf, flags);
        CHECK(sm_map_gguf_name(&hp, M[i].gguf, h, sizeof h) == 1 && !strcmp(h, M[i].hf));
    }
    char g[64];
    int flags;
    CHECK(sm_map_hf_name(&hp, "model.layers.0.self_attn.rotary_emb.inv_freq", g, sizeof g, &flags) == 0);
    CHECK_FAILS_WITH(sm_map_hf_name(&hp, "model.layers.4.mlp.up_proj.weight", g, sizeof g, &flags), "4 layers");
    CHECK_FAILS_WITH(sm_map_hf_name(&hp, "model.layers.0.mlp.fc1.weight", g, sizeof g, &flags), "not a known");
    CHECK_FAILS_WITH(sm_map_hf_name(&hp, "model.layers.01.mlp.up_proj.weight", g, sizeof g, &flags), "not a known");
    CHECK_FAILS_WITH(sm_map_hf_name(&hp, "transformer.wte.weight", g, sizeof g, &flags), "not a known");
    CHECK(sm_map_hf_name(&hp, "model.embed_tokens.weight", g, 8, &flags) == -1); /* does not fit */
    hp.tied_embeddings = true;
    CHECK(sm_map_hf_name(&hp, "lm_head.weight", g, sizeof g, &flags) == 0);
    hp.rope_hf_layout = false; /* Qwen2-style: no permutation */
    CHECK(sm_map_hf_name(&hp, "model.layers.0.self_attn.q_proj.weight", g, sizeof g, &flags) == 1 && flags == 0);
    char h[64];
    CHECK(sm_map_gguf_name(&hp, "rope_freqs.weight", h, sizeof h) == 0);
    CHECK(sm_map_gguf_name(&hp, "blk.9.attn_q.weight", h, sizeof h) == 0);
}

static void permute(void) {
    /* LlamaModel.permute: reshape(n_head, 2, d/2, ...).swapaxes(1, 2). Worked by hand for
     * 8 rows, 2 heads (d = 4): head 0 rows (0 1 | 2 3) -> 0 2 1 3, head 1 -> 4 6 5 7. */
    float src[8 * 3], dst[8 * 3];
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) src[r * 3 + c] = (float)(r * 10 + c);
    sm_permute_rope_rows(src, dst, 8, 3, 2);
    const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) CHECK(dst[r * 3 + c] == (float)(order[r] * 10 + c));
    /* one head of 8 rows (d/2 = 4): (0 1 2 3 | 4 5 6 7) -> 0 4 1 5 2 6 3 7 */
    uint16_t s16[8], d16[8];
    for (int r = 0; r < 8; r++) s16[r] = (uint16_t)(100 + r);
    sm_permute_rope_rows_raw(s16, d16, 8, 2, 1);
    const int order1[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (int r = 0; r < 8; r++) CHECK(d16[r] == 100 + order1[r]);
}

/* Gemma's norm + 1 in the source dtype, as torch computes w + 1 (values from torch 1.13:
 * bf16 [0.0029296875, 0.005859375, -0.5] + 1 = [1.0, 1.0078125, 0.5]; f16 [0.0029296875,
 * 0.00048828125] + 1 = [1.0029296875, 1.0]); and the Gemma 2 names of the HF norms */
static void gemma2_norm_shift(void) {
    const float bvals[3] = {0.0029296875f, 0.005859375f, -0.5f}, bwant[3] = {1.0f, 1.0078125f, 0.5f};
    uint16_t b[3], h[2];
    for (int i = 0; i < 3; i++) b[i] = sm_f32_to_bf16(bvals[i]);
    h[0] = sm_f32_to_f16(0.0029296875f);
    h[1] = sm_f32_to_f16(0.00048828125f);
    float out[3];
    CHECK_OK(sm_norm_shift_to_f32(SM_TYPE_BF16, b, out, 3));
    for (int i = 0; i < 3; i++) CHECK_MSG(out[i] == bwant[i], "bf16 %g + 1 = %g, torch %g", bvals[i], out[i], bwant[i]);
    CHECK_OK(sm_norm_shift_to_f32(SM_TYPE_F16, h, out, 2));
    CHECK(out[0] == 1.0029296875f && out[1] == 1.0f);
    const float f = 0.00048828125f;
    CHECK_OK(sm_norm_shift_to_f32(SM_TYPE_F32, &f, out, 1));
    CHECK(out[0] == 1.00048828125f);

    sm_hparams hp = {0};
    snprintf(hp.hf_arch, sizeof hp.hf_arch, "Gemma2ForCausalLM");
    snprintf(hp.arch, sizeof hp.arch, "gemma2");
    hp.n_layer = 4;
    hp.features = sm_arch_by_hf("Gemma2ForCausalLM")->features;
    static const struct { const char *hf, *gguf; } N[] = {
        {"model.layers.1.post_attention_layernorm.weight", "blk.1.post_attention_norm.weight"},
        {"model.layers.1.pre_feedforward_layernorm.weight", "blk.1.ffn_norm.weight"},
        {"model.layers.1.post_feedforward_layernorm.weight", "blk.1.post_ffw_norm.weight"},
        {"model.layers.1.input_layernorm.weight", "blk.1.attn_norm.weight"},
        {"model.norm.weight", "output_norm.weight"},
    };
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++) {
        char g[96], back[96];
        int flags = 0;
        CHECK(sm_map_hf_name(&hp, N[i].hf, g, sizeof g, &flags) == 1 && !strcmp(g, N[i].gguf) &&
              flags == (SM_MAP_KEEP_F32 | SM_MAP_NORM_SHIFT));
        CHECK(sm_map_gguf_name(&hp, N[i].gguf, back, sizeof back) == 1 && !strcmp(back, N[i].hf));
    }
    /* Llama's post_attention_layernorm is still its ffn_norm, without a shift */
    hp.features = 0;
    char g[96];
    int flags = 0;
    CHECK(sm_map_hf_name(&hp, "model.layers.1.post_attention_layernorm.weight", g, sizeof g, &flags) == 1 &&
          !strcmp(g, "blk.1.ffn_norm.weight") && flags == SM_MAP_KEEP_F32);
    CHECK(sm_map_hf_name(&hp, "model.layers.1.pre_feedforward_layernorm.weight", g, sizeof g, &flags) == -1);
}

void run_tests(void) {
    TEST(gemma2_norm_shift);
    TEST(kjv_config);
    TEST(qwen2_mistral_defaults);
    TEST(qwen3_table);
    TEST(rope_scaling);
    TEST(config_errors);
    TEST(names);
    TEST(permute);
}

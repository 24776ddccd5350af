/* test_recipe.c - quantization mixtures against llama.cpp's documented per-tensor rules
 * (llama-quant.cpp): expectations are worked out by hand from those rules. */
#include "testlib.h"

#include "quantize/quantize.h"

#include <string.h>

#define MAXT 512
static char names_buf[MAXT][64];
static const char *names[MAXT];

/* Llama-style tensor list in GGUF order: token_embd, per layer (attn_norm, q, k, v, output,
 * ffn_norm, gate, up, down), output_norm, optional output. */
static size_t llama_names(int n_layer, bool with_output) {
    size_t n = 0;
    snprintf(names_buf[n++], 64, "token_embd.weight");
    static const char *per[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < n_layer; l++)
        for (size_t k = 0; k < 9; k++) snprintf(names_buf[n++], 64, "blk.%d.%s.weight", l, per[k]);
    snprintf(names_buf[n++], 64, "output_norm.weight");
    if (with_output) snprintf(names_buf[n++], 64, "output.weight");
    for (size_t i = 0; i < n; i++) names[i] = names_buf[i];
    return n;
}

static sm_type plan_one(sm_recipe_plan *p, const char *name, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    bool is_norm = strstr(name, "_norm") != NULL;
    return sm_recipe_tensor_type(p, name, is_norm ? 1 : 2, is_norm ? shape + 1 : shape, SM_TYPE_F16, NULL);
}

static void lookup(void) {
    CHECK(sm_recipe_find("q4_k_m") && sm_recipe_find("q4_k_m")->ftype == 15);
    CHECK(sm_recipe_find("Q4_K") && sm_recipe_find("Q4_K")->ftype == 15); /* alias, as llama-quantize */
    CHECK(sm_recipe_find("Q8_0")->ftype == 7);
    CHECK(sm_recipe_find("IQ4_XS")->ftype == 30);
    CHECK(sm_recipe_find("nope") == NULL);
}

/* 32-layer Llama, Q4_K_M: attn_v and ffn_down get Q6_K on layers 0-3, 28-31 and every third
 * layer from 6 (use_more_bits), Q4_K elsewhere; output Q6_K; token_embd Q4_K. */
static void q4_k_m_32_layers(void) {
    size_t n = llama_names(32, true);
    sm_recipe_plan p;
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_K_M"), names, n, &(sm_recipe_model){"llama", 32, 32, 8, 0}, false));
    CHECK(p.n_attention_wv == 32);
    CHECK(plan_one(&p, "token_embd.weight", 32000, 4096) == SM_TYPE_Q4_K);
    for (int l = 0; l < 32; l++) {
        char b[64];
        bool more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        snprintf(b, sizeof b, "blk.%d.attn_norm.weight", l);
        CHECK(plan_one(&p, b, 1, 4096) == SM_TYPE_F16); /* 1-D: untouched */
        snprintf(b, sizeof b, "blk.%d.attn_q.weight", l);
        CHECK(plan_one(&p, b, 4096, 4096) == SM_TYPE_Q4_K);
        snprintf(b, sizeof b, "blk.%d.attn_v.weight", l);
        CHECK_MSG(plan_one(&p, b, 1024, 4096) == (more ? SM_TYPE_Q6_K : SM_TYPE_Q4_K), "layer %d attn_v", l);
        snprintf(b, sizeof b, "blk.%d.ffn_down.weight", l);
        CHECK_MSG(plan_one(&p, b, 4096, 14336) == (more ? SM_TYPE_Q6_K : SM_TYPE_Q4_K), "layer %d ffn_down", l);
    }
    CHECK(plan_one(&p, "output.weight", 32000, 4096) == SM_TYPE_Q6_K);
    sm_recipe_plan_free(&p);
}

/* stories260K-like: dim 64, hidden 172, tied embeddings. Q4_K_M: token_embd (tied, row 64 not a
 * multiple of 256) -> Q8_0; w1/w3 rows of 64 -> Q4_K falls back to Q5_0; ffn_down rows of 172
 * (not a multiple of 32) -> Q6_K -> Q8_0 -> F16. */
static void fallbacks(void) {
    size_t n = llama_names(5, false);
    sm_recipe_plan p;
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_K_M"), names, n, &(sm_recipe_model){"llama", 5, 8, 4, 0}, false));
    CHECK(p.tied_embeddings);
    CHECK(plan_one(&p, "token_embd.weight", 512, 64) == SM_TYPE_Q8_0);
    bool fb = false;
    int64_t s[2] = {172, 64};
    CHECK(sm_recipe_tensor_type(&p, "blk.0.ffn_gate.weight", 2, s, SM_TYPE_F32, &fb) == SM_TYPE_Q5_0);
    CHECK(fb);
    int64_t d[2] = {64, 172};
    CHECK(sm_recipe_tensor_type(&p, "blk.0.ffn_down.weight", 2, d, SM_TYPE_F32, &fb) == SM_TYPE_F16);
    sm_recipe_plan_free(&p);
}

/* tiny-llama-kjv shape (4 layers, 8 heads / 4 kv heads): Q4_K_M gives Q6_K to attn_v and
 * ffn_down of layers 2 and 3 ((i - 0) % 3 == 2, i >= 7*4/8 = 3). Q3_K_M: attn_v Q5_K for the
 * first two, Q4_K after; ffn_down Q4_K; attn_output Q4_K. */
static void small_model_mixtures(void) {
    size_t n = llama_names(4, true);
    sm_recipe_plan p;
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_K_M"), names, n, &(sm_recipe_model){"llama", 4, 8, 4, 0}, false));
    sm_type want_v[4] = {SM_TYPE_Q4_K, SM_TYPE_Q4_K, SM_TYPE_Q6_K, SM_TYPE_Q6_K};
    for (int l = 0; l < 4; l++) {
        char b[64];
        snprintf(b, sizeof b, "blk.%d.attn_v.weight", l);
        CHECK(plan_one(&p, b, 128, 256) == want_v[l]);
        snprintf(b, sizeof b, "blk.%d.ffn_down.weight", l);
        CHECK(plan_one(&p, b, 256, 768) == want_v[l]);
    }
    sm_recipe_plan_free(&p);

    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q3_K_M"), names, n, &(sm_recipe_model){"llama", 4, 8, 4, 0}, false));
    for (int l = 0; l < 4; l++) {
        char b[64];
        snprintf(b, sizeof b, "blk.%d.attn_v.weight", l);
        CHECK(plan_one(&p, b, 128, 256) == (l < 2 ? SM_TYPE_Q5_K : SM_TYPE_Q4_K));
        snprintf(b, sizeof b, "blk.%d.ffn_down.weight", l);
        CHECK(plan_one(&p, b, 256, 768) == SM_TYPE_Q4_K);
        snprintf(b, sizeof b, "blk.%d.attn_output.weight", l);
        CHECK(plan_one(&p, b, 256, 256) == SM_TYPE_Q4_K);
        snprintf(b, sizeof b, "blk.%d.attn_q.weight", l);
        CHECK(plan_one(&p, b, 256, 256) == SM_TYPE_Q3_K);
    }
    sm_recipe_plan_free(&p);
}

static void overrides(void) {
    size_t n = llama_names(4, true);
    sm_recipe_plan p;
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_0"), names, n, &(sm_recipe_model){"llama", 4, 8, 8, 0}, false));
    CHECK_OK(sm_recipe_add_rule(&p, "attn_q", NULL));              /* --keep */
    CHECK_OK(sm_recipe_add_rule(&p, "ffn_(up|gate)", "q8_0"));     /* --tensor-type */
    CHECK(plan_one(&p, "blk.0.attn_q.weight", 256, 256) == SM_TYPE_F16);
    CHECK(plan_one(&p, "blk.0.ffn_up.weight", 768, 256) == SM_TYPE_Q8_0);
    CHECK(plan_one(&p, "blk.0.attn_k.weight", 256, 256) == SM_TYPE_Q4_0);
    CHECK(plan_one(&p, "output.weight", 2048, 256) == SM_TYPE_Q6_K);
    CHECK_FAILS_WITH(sm_recipe_add_rule(&p, "(", "q8_0"), "regular expression");
    CHECK_FAILS_WITH(sm_recipe_add_rule(&p, "x", "q9_9"), "unknown tensor type");
    sm_recipe_plan_free(&p);
    /* Q4_0 with an imatrix: the first n_layer/8 ffn_down go to Q4_1 (32 layers -> 0..3) */
    n = llama_names(32, true);
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_0"), names, n, &(sm_recipe_model){"llama", 32, 32, 8, 0}, true));
    for (int l = 0; l < 32; l++) {
        char b[64];
        snprintf(b, sizeof b, "blk.%d.ffn_down.weight", l);
        CHECK(plan_one(&p, b, 4096, 11008) == (l < 4 ? SM_TYPE_Q4_1 : SM_TYPE_Q4_0));
    }
    sm_recipe_plan_free(&p);
}

/* What llama-quantize (llama.cpp d32676d77) chose for tiny-llama-kjv (4 layers, n_gqa 2),
 * read back from its output files: per recipe, layer-independent types of attn_q, attn_v,
 * attn_output, ffn_down, ffn_up and token_embd / output. */
static void observed_llama_quantize(void) {
    static const struct { const char *recipe; sm_type q, v, o, down, up, embd, out; } obs[] = {
        {"Q2_K", SM_TYPE_Q2_K, SM_TYPE_Q3_K, SM_TYPE_Q3_K, SM_TYPE_Q3_K, SM_TYPE_Q2_K, SM_TYPE_Q2_K, SM_TYPE_Q6_K},
        {"Q4_K_S", SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q4_K, SM_TYPE_Q4_K, SM_TYPE_Q4_K, SM_TYPE_Q4_K, SM_TYPE_Q6_K},
        {"Q3_K_L", SM_TYPE_Q3_K, SM_TYPE_Q5_K, SM_TYPE_Q5_K, SM_TYPE_Q5_K, SM_TYPE_Q3_K, SM_TYPE_Q3_K, SM_TYPE_Q6_K},
        {"IQ4_XS", SM_TYPE_IQ4_XS, SM_TYPE_IQ4_XS, SM_TYPE_IQ4_XS, SM_TYPE_IQ4_XS, SM_TYPE_IQ4_XS, SM_TYPE_IQ4_XS, SM_TYPE_Q6_K},
    };
    size_t n = llama_names(4, true);
    for (size_t k = 0; k < sizeof obs / sizeof obs[0]; k++) {
        sm_recipe_plan p;
        CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find(obs[k].recipe), names, n, &(sm_recipe_model){"llama", 4, 8, 4, 0}, false));
        CHECK_MSG(plan_one(&p, "token_embd.weight", 2048, 256) == obs[k].embd, "%s token_embd", obs[k].recipe);
        for (int l = 0; l < 4; l++) {
            char b[64];
            snprintf(b, sizeof b, "blk.%d.attn_q.weight", l);
            CHECK_MSG(plan_one(&p, b, 256, 256) == obs[k].q, "%s %s", obs[k].recipe, b);
            snprintf(b, sizeof b, "blk.%d.attn_v.weight", l);
            CHECK_MSG(plan_one(&p, b, 128, 256) == obs[k].v, "%s %s", obs[k].recipe, b);
            snprintf(b, sizeof b, "blk.%d.attn_output.weight", l);
            CHECK_MSG(plan_one(&p, b, 256, 256) == obs[k].o, "%s %s", obs[k].recipe, b);
            snprintf(b, sizeof b, "blk.%d.ffn_up.weight", l);
            CHECK_MSG(plan_one(&p, b, 768, 256) == obs[k].up, "%s %s", obs[k].recipe, b);
            snprintf(b, sizeof b, "blk.%d.ffn_down.weight", l);
            CHECK_MSG(plan_one(&p, b, 256, 768) == obs[k].down, "%s %s", obs[k].recipe, b);
        }
        CHECK_MSG(plan_one(&p, "output.weight", 2048, 256) == obs[k].out, "%s output", obs[k].recipe);
        sm_recipe_plan_free(&p);
    }
}

void run_tests(void) {
    TEST(observed_llama_quantize);
    TEST(lookup);
    TEST(q4_k_m_32_layers);
    TEST(fallbacks);
    TEST(small_model_mixtures);
    TEST(overrides);
}

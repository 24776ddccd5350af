/* test_moe_recipe.c - llama.cpp's mixture rules for expert models (src/llama-quant.cpp,
 * llama_tensor_get_type_impl with hparams.n_expert), checked tensor by tensor against tables
 * written from reading those rules, without llama.cpp:
 *   - 8 experts (Mixtral): attn_v and attn_k go to Q8_0 in every k/i-quant and legacy recipe
 *     except the 1-2 bit i-quants, where attn_v and attn_k get Q4_K and attn_output Q5_K;
 *     attn_output is Q5_K in Q2_K, Q3_K_S/M, Q4_K_S/M, IQ3_XXS/XS/S/M, IQ4_NL/XS and the
 *     recipe's default type otherwise (no dense Q3_K_L/Q3_K_M bumps); IQ3_M's ffn_down gets Q4_K
 *     in the "more bits" layers too;
 *   - 4 or more experts: attn_v gets Q4_K in the 1-2 bit i-quants whatever the GQA ratio;
 *   - the feed-forward rules look at the block number in the name (not a running count),
 *     except the 1-2 bit i-quants' ffn_down rule, which counts;
 *   - MXFP4_MOE: MXFP4 for the 3-D expert tensors, Q8_0 for every other quantized tensor;
 *   - ffn_gate_inp (the router) is never quantized;
 *   - a feed-forward tensor of an expert model without blk.N (N < block_count) is refused. */
#include "moe_testlib.h"

#include "quantize/quantize.h"

#include <string.h>

#define NL 8 /* layers of model A */

typedef struct tensor { char name[64]; int n_dims; int64_t shape[3]; } tensor;

/* a model's tensors in llama-quantize's order (block, then name) */
static int model_tensors(tensor *t, int n_layer, int n_expert, int64_t E, int64_t F, int64_t Q, int64_t KV) {
    int k = 0;
#define T(nd, a, b, c, ...) (snprintf(t[k].name, sizeof t[k].name, __VA_ARGS__), t[k].n_dims = nd, \
                             t[k].shape[0] = a, t[k].shape[1] = b, t[k].shape[2] = c, k++)
    T(1, E, 0, 0, "output_norm.weight");
    T(2, 2048, E, 0, "output.weight");
    T(2, 2048, E, 0, "token_embd.weight");
    for (int l = 0; l < n_layer; l++) {
        T(2, KV, E, 0, "blk.%d.attn_k.weight", l);
        T(1, E, 0, 0, "blk.%d.attn_norm.weight", l);
        T(2, E, Q, 0, "blk.%d.attn_output.weight", l);
        T(2, Q, E, 0, "blk.%d.attn_q.weight", l);
        T(2, KV, E, 0, "blk.%d.attn_v.weight", l);
        T(3, n_expert, E, F, "blk.%d.ffn_down_exps.weight", l);
        T(3, n_expert, F, E, "blk.%d.ffn_gate_exps.weight", l);
        T(2, n_expert, E, 0, "blk.%d.ffn_gate_inp.weight", l);
        T(1, E, 0, 0, "blk.%d.ffn_norm.weight", l);
        T(3, n_expert, F, E, "blk.%d.ffn_up_exps.weight", l);
    }
#undef T
    return k;
}

/* plan every tensor of the model in order; types[i] of tensor i */
static void plan(const char *recipe, const char *arch, int n_layer, int n_expert, int n_head, int n_kv, bool imatrix,
                 const tensor *t, int n, sm_type *types) {
    const char *names[512];
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    sm_recipe_plan p;
    const sm_recipe_model rm = {arch, n_layer, n_head, n_kv, n_expert};
    CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find(recipe), names, (size_t)n, &rm, imatrix));
    for (int i = 0; i < n; i++) types[i] = sm_recipe_tensor_type(&p, t[i].name, t[i].n_dims, t[i].shape, SM_TYPE_F32, NULL);
    sm_recipe_plan_free(&p);
}

static sm_type type_of(const tensor *t, int n, const sm_type *types, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return types[i];
    return SM_TYPE_INVALID;
}

enum { Q2K = SM_TYPE_Q2_K, Q3K = SM_TYPE_Q3_K, Q4K = SM_TYPE_Q4_K, Q5K = SM_TYPE_Q5_K, Q6K = SM_TYPE_Q6_K,
       Q80 = SM_TYPE_Q8_0, Q40 = SM_TYPE_Q4_0, Q41 = SM_TYPE_Q4_1, I1S = SM_TYPE_IQ1_S, I1M = SM_TYPE_IQ1_M,
       I2XXS = SM_TYPE_IQ2_XXS, I2XS = SM_TYPE_IQ2_XS, I2S = SM_TYPE_IQ2_S, I3XXS = SM_TYPE_IQ3_XXS,
       I3S = SM_TYPE_IQ3_S, I4NL = SM_TYPE_IQ4_NL, I4XS = SM_TYPE_IQ4_XS, MX = SM_TYPE_MXFP4, F32 = SM_TYPE_F32 };

/* Model A: llama with 8 experts, 8 layers, 8 heads / 4 KV heads (n_gqa 2), untied output.
 * n_layer/8 = 1, 7*n_layer/8 = 7, n_layer/16 = 0, use_more_bits(l, 8) for l in {0, 3, 6, 7};
 * attn_v's use_more_bits counts attn_v tensors (8 of them). Columns: token_embd, output, attn_v
 * of block 0 and 1, attn_k, attn_q, attn_output, ffn_down_exps of blocks 0, 3 and 4,
 * ffn_gate_exps of blocks 0 and 1, ffn_up_exps of block 7. */
static const struct row {
    const char *recipe;
    bool imatrix;
    int embd, out, v0, v1, k, q, o, d0, d3, d4, g0, g1, u7;
} A[] = {
    /* the 1-2 bit i-quants: attn_v, attn_k Q4_K, attn_output Q5_K; ffn_down of the first
     * n/8 (counted) layers Q2_K (IQ3_S for IQ2_S/M) */
    {"IQ2_XXS", true, Q2K, Q5K, Q4K, Q4K, Q4K, I2XXS, Q5K, Q2K, I2XXS, I2XXS, I2XXS, I2XXS, I2XXS},
    {"IQ2_XS", true, Q2K, Q5K, Q4K, Q4K, Q4K, I2XS, Q5K, Q2K, I2XS, I2XS, I2XS, I2XS, I2XS},
    {"IQ2_S", true, I3S, Q5K, Q4K, Q4K, Q4K, I2XS, Q5K, I3S, I2XS, I2XS, I2XS, I2XS, I2XS},
    {"IQ2_M", true, I3S, Q5K, Q4K, Q4K, Q4K, I2S, Q5K, I3S, I2S, I2S, I2S, I2S, I2S},
    {"IQ1_S", true, Q2K, Q5K, Q4K, Q4K, Q4K, I1S, Q5K, Q2K, I1S, I1S, I1S, I1S, I1S},
    {"IQ1_M", true, Q2K, Q5K, Q4K, Q4K, Q4K, I1M, Q5K, Q2K, I1M, I1M, I1M, I1M, I1M},
    /* the rest: attn_v and attn_k Q8_0 */
    {"Q2_K", false, Q2K, Q6K, Q80, Q80, Q80, Q2K, Q5K, Q3K, Q3K, Q3K, Q2K, Q2K, Q2K},
    {"Q2_K_S", true, Q2K, Q6K, Q80, Q80, Q80, Q2K, Q2K, Q4K, Q2K, Q2K, Q2K, Q2K, Q2K},
    {"Q3_K_S", false, Q3K, Q6K, Q80, Q80, Q80, Q3K, Q5K, Q3K, Q3K, Q3K, Q3K, Q3K, Q3K},
    {"Q3_K_M", false, Q3K, Q6K, Q80, Q80, Q80, Q3K, Q5K, Q4K, Q4K, Q4K, Q3K, Q3K, Q3K},
    {"Q3_K_L", false, Q3K, Q6K, Q80, Q80, Q80, Q3K, Q3K, Q5K, Q5K, Q5K, Q3K, Q3K, Q3K},
    {"Q4_K_S", false, Q4K, Q6K, Q80, Q80, Q80, Q4K, Q5K, Q5K, Q4K, Q4K, Q4K, Q4K, Q4K},
    {"Q4_K_M", false, Q4K, Q6K, Q80, Q80, Q80, Q4K, Q5K, Q6K, Q6K, Q4K, Q4K, Q4K, Q4K},
    {"Q5_K_S", false, Q5K, Q6K, Q80, Q80, Q80, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K},
    {"Q5_K_M", false, Q5K, Q6K, Q80, Q80, Q80, Q5K, Q5K, Q6K, Q6K, Q5K, Q5K, Q5K, Q5K},
    {"Q6_K", false, Q6K, Q6K, Q80, Q80, Q80, Q6K, Q6K, Q6K, Q6K, Q6K, Q6K, Q6K, Q6K},
    {"IQ3_XXS", true, I3S, Q5K, Q80, Q80, Q80, I2S, Q5K, I3XXS, I3XXS, I3XXS, I3XXS, I3XXS, I3XXS},
    {"IQ3_XXS", false, I3S, Q5K, Q80, Q80, Q80, I2S, Q5K, Q4K, Q3K, Q3K, I3XXS, I3XXS, I3XXS},
    {"IQ3_XS", true, I3S, Q6K, Q80, Q80, Q80, I3XXS, Q5K, I3S, I3S, I3S, I3S, I3XXS, I3S},
    {"IQ3_S", false, I3S, Q6K, Q80, Q80, Q80, I3S, Q5K, I3S, I3S, I3S, I3S, I3S, I3S},
    {"IQ3_M", false, I3S, Q6K, Q80, Q80, Q80, I3S, Q5K, Q4K, Q4K, I3S, I3S, I3S, I3S},
    {"IQ4_NL", false, I4NL, Q6K, Q80, Q80, Q80, I4NL, Q5K, Q5K, I4NL, I4NL, I4NL, I4NL, I4NL},
    {"IQ4_XS", true, I4XS, Q6K, Q80, Q80, Q80, I4XS, Q5K, I4XS, I4XS, I4XS, I4XS, I4XS, I4XS},
    {"Q4_0", true, Q40, Q6K, Q80, Q80, Q80, Q40, Q40, Q41, Q40, Q40, Q40, Q40, Q40},
    {"Q8_0", false, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80, Q80},
    /* MXFP4_MOE: experts MXFP4, the rest Q8_0 */
    {"MXFP4_MOE", false, Q80, Q80, Q80, Q80, Q80, Q80, Q80, MX, MX, MX, MX, MX, MX},
};

static void mixtral_rules(void) {
    tensor t[3 + NL * 10];
    sm_type types[3 + NL * 10];
    const int n = model_tensors(t, NL, 8, 256, 256, 256, 128);
    for (size_t r = 0; r < sizeof A / sizeof *A; r++) {
        plan(A[r].recipe, "llama", NL, 8, 8, 4, A[r].imatrix, t, n, types);
        const struct { const char *name; int want; } C[] = {
            {"token_embd.weight", A[r].embd}, {"output.weight", A[r].out}, {"blk.0.attn_v.weight", A[r].v0},
            {"blk.1.attn_v.weight", A[r].v1}, {"blk.2.attn_k.weight", A[r].k}, {"blk.2.attn_q.weight", A[r].q},
            {"blk.5.attn_output.weight", A[r].o}, {"blk.0.ffn_down_exps.weight", A[r].d0},
            {"blk.3.ffn_down_exps.weight", A[r].d3}, {"blk.4.ffn_down_exps.weight", A[r].d4},
            {"blk.0.ffn_gate_exps.weight", A[r].g0}, {"blk.1.ffn_gate_exps.weight", A[r].g1},
            {"blk.7.ffn_up_exps.weight", A[r].u7}, {"blk.4.ffn_gate_inp.weight", F32}};
        for (size_t c = 0; c < sizeof C / sizeof *C; c++) {
            const sm_type got = type_of(t, n, types, C[c].name);
            CHECK_MSG(got == (sm_type)C[c].want, "%s%s, 8 experts: %s is %s, llama-quant.cpp's rules give %s",
                      A[r].recipe, A[r].imatrix ? " (imatrix)" : "", C[c].name, sm_type_name(got),
                      sm_type_name((sm_type)C[c].want));
        }
    }
}

/* Model B: qwen3moe with 6 experts (>= 4, not 8), 4 layers, 4 / 2 heads (n_gqa 2), expert FFN
 * 128 (ffn_down_exps rows of 128: k- and i-quants fall back, Q4_K -> Q5_0, Q6_K -> Q8_0,
 * IQ* -> IQ4_NL). Only the 1-2 bit i-quants' attn_v differs from the dense rules. */
static void qwen3moe_rules(void) {
    tensor t[3 + 4 * 10];
    sm_type types[3 + 4 * 10];
    const int n = model_tensors(t, 4, 6, 256, 128, 256, 128);
    static const struct { const char *recipe; const char *name; int want; } B[] = {
        {"IQ2_XS", "blk.1.attn_v.weight", Q4K},        /* n_expert >= 4 (dense, n_gqa 2: Q2_K) */
        {"IQ2_M", "blk.1.attn_v.weight", Q4K},         /* (dense: IQ3_S) */
        {"IQ2_XS", "blk.1.attn_k.weight", I2XS},       /* the Q4_K attn_k rule is for 8 experts */
        {"IQ1_S", "blk.1.attn_output.weight", I2XXS},  /* dense rule (8 experts: Q5_K) */
        {"IQ2_XS", "blk.0.ffn_down_exps.weight", I4NL},/* n/8 = 0: default IQ2_XS, rows of 128: IQ4_NL */
        {"Q4_K_M", "blk.0.attn_v.weight", Q4K},        /* use_more_bits(0, 4) false */
        {"Q4_K_M", "blk.2.attn_v.weight", Q6K},        /* use_more_bits(2, 4) */
        {"Q4_K_M", "blk.2.attn_k.weight", Q4K},        /* no Q8_0: not 8 experts */
        {"Q3_K_M", "blk.2.attn_output.weight", Q4K},   /* dense rule */
        {"Q3_K_L", "blk.2.attn_output.weight", Q5K},
        {"Q4_K_M", "blk.1.ffn_down_exps.weight", SM_TYPE_Q5_0}, /* Q4_K, falls back */
        {"Q4_K_M", "blk.2.ffn_down_exps.weight", Q80},          /* Q6_K (more bits), falls back */
        {"Q4_K_M", "blk.2.ffn_up_exps.weight", Q4K},
        {"IQ3_XS", "blk.0.ffn_gate_exps.weight", I3XXS}, /* [n/8, 7n/8) = [0, 3) */
        {"IQ3_XS", "blk.3.ffn_gate_exps.weight", I3S},
        {"MXFP4_MOE", "blk.1.ffn_down_exps.weight", MX},
        {"MXFP4_MOE", "blk.1.attn_q.weight", Q80},
        {"MXFP4_MOE", "blk.1.ffn_gate_inp.weight", F32},
    };
    for (size_t r = 0; r < sizeof B / sizeof *B; r++) {
        plan(B[r].recipe, "qwen3moe", 4, 6, 4, 2, true, t, n, types);
        const sm_type got = type_of(t, n, types, B[r].name);
        CHECK_MSG(got == (sm_type)B[r].want, "%s, 6 experts: %s is %s, llama-quant.cpp's rules give %s", B[r].recipe,
                  B[r].name, sm_type_name(got), sm_type_name((sm_type)B[r].want));
    }
}

/* The feed-forward rules of an expert model read the block from the name: a tensor without one,
 * or with a block outside the model, is refused (llama.cpp throws "Failed to determine layer" /
 * "Bad layer"); a dense model counts and accepts both. */
static void layer_from_name(void) {
    static const char *const bad[] = {"ffn_down_exps.weight", "blk.8.ffn_up_exps.weight", "blk.x.ffn_gate_exps.weight"};
    const int64_t shape[3] = {8, 256, 256};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *names[1] = {bad[i]};
        sm_recipe_plan p;
        CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_K_M"), names, 1, &(sm_recipe_model){"llama", 8, 8, 4, 8}, false));
        CHECK_MSG(sm_recipe_tensor_type(&p, bad[i], 3, shape, SM_TYPE_F32, NULL) == SM_TYPE_INVALID &&
                      strstr(sm_last_error(), bad[i]),
                  "%s: %s", bad[i], sm_last_error());
        sm_recipe_plan_free(&p);
        CHECK_OK(sm_recipe_plan_begin(&p, sm_recipe_find("Q4_K_M"), names, 1, &(sm_recipe_model){"llama", 8, 8, 4, 0}, false));
        CHECK(sm_recipe_tensor_type(&p, bad[i], 3, shape, SM_TYPE_F32, NULL) != SM_TYPE_INVALID);
        sm_recipe_plan_free(&p);
    }
}

void run_tests(void) {
    TEST(mixtral_rules);
    TEST(qwen3moe_rules);
    TEST(layer_from_name);
}

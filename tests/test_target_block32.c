/* test_target_block32.c - size-targeted mixtures on a model whose rows are 64 and 96 wide (the
 * tiny Qwen2 fixture): no K-quant fits such rows, so the planner chooses among the block-32
 * types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). token_embd is 68% of the weights, so the plan moves in
 * large steps: with Q4_0/Q5_0/Q8_0 alone and the Lagrangian, a 6.85 bpw budget got a 6.534 bpw
 * plan (token_embd Q5_0, the rest Q8_0). Now:
 *  - a budget between those steps is filled to within 2% and never exceeded;
 *  - at the bits per weight of llama-quantize's Q4_K_M and Q3_K_M the plan is never above the
 *    budget, holds at least as many bits as the largest plan that keeps token_embd below Q8_0
 *    (every other tensor Q8_0, token_embd Q5_1: measured by `smelt quantize Q8_0 --tensor-type`),
 *    and is closer to the base (mean KLD on held-out text) than the fixed recipe. */
#include "testlib.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static char g_f16[1024];

/* A number field (dotted path) of `smelt ... --json`'s output; NAN when absent. */
static double json_num(const char *out, const char *path) {
    const char *j = out ? strchr(out, '{') : NULL;
    cJSON *root = j ? cJSON_Parse(j) : NULL, *n = root;
    char key[128];
    snprintf(key, sizeof key, "%s", path);
    for (char *k = strtok(key, "."); k && n; k = strtok(NULL, ".")) n = cJSON_GetObjectItem(n, k);
    const double v = cJSON_IsNumber(n) ? n->valuedouble : NAN;
    cJSON_Delete(root);
    return v;
}

static void setup(void) {
    const char *d = tl_make_qwen2_tiny();
    CHECK(d != NULL);
    if (!d) return;
    snprintf(g_f16, sizeof g_f16, "%s", tl_tmp("qwen2-f16.gguf"));
    char args[2048];
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f16 --quiet", d, g_f16);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 128 --chunks 8 --save-logits '%s' --quiet", g_f16,
             tl_asset("text/kjv-eval.txt"), tl_tmp("base.logits"));
    CHECK(tl_run_smelt(args, NULL) == 0);
}

/* `smelt quantize F16 OUT ARGS --json`'s bits per weight (NAN on failure); OUT's mean KLD against
 * the base's logits in *kld when kld is not NULL. */
static double quantize_bpw(const char *out_name, const char *qargs, double *kld) {
    char args[4096], *out = NULL;
    const char *o = tl_tmp(out_name);
    snprintf(args, sizeof args, "quantize '%s' '%s' %s --json --quiet", g_f16, o, qargs);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "smelt %s: %s", args, out ? out : "");
    const double b = json_num(out, "bpw");
    free(out);
    if (kld) {
        out = NULL;
        snprintf(args, sizeof args, "ppl '%s' --kld '%s' --json --quiet", o, tl_tmp("base.logits"));
        CHECK(tl_run_smelt(args, &out) == 0);
        *kld = json_num(out, "kld_mean");
        free(out);
    }
    return b;
}

static double target(double bpw, double *kld) {
    char args[2048];
    snprintf(args, sizeof args, "--target-bpw %.6f --calib '%s' --probe-ctx 128 --probe-chunks 2", bpw,
             tl_asset("text/kjv-calib.txt"));
    return quantize_bpw("mix.gguf", args, kld);
}

static void budget_between_steps(void) {
    const double b = 6.85, got = target(b, NULL);
    fprintf(stderr, "  budget %.4f bpw: plan %.4f\n", b, got);
    CHECK_MSG(got <= b + 1e-9 && got >= 0.98 * b, "the mixture has %.4f bpw for a budget of %.4f", got, b);
}

static void recipe_budget(const char *recipe) {
    char args[2048];
    double k_fixed = NAN, k_mix = NAN;
    snprintf(args, sizeof args, "%s", recipe);
    const double b = quantize_bpw("fixed.gguf", args, &k_fixed);
    const double most = quantize_bpw("most.gguf", "Q8_0 --tensor-type token_embd=q5_1", NULL);
    const double got = target(b, &k_mix);
    fprintf(stderr, "  %s: budget %.4f bpw (KLD %.6f), plan %.4f (KLD %.6f); token_embd below Q8_0: at most %.4f\n",
            recipe, b, k_fixed, got, k_mix, most);
    CHECK_MSG(got <= b + 1e-9, "%s: the mixture has %.4f bpw for a budget of %.4f", recipe, got, b);
    CHECK_MSG(got >= most - 1e-9, "%s: the mixture has %.4f bpw; every tensor but token_embd at Q8_0 and it at Q5_1 is %.4f",
              recipe, got, most);
    CHECK_MSG(k_mix < k_fixed, "%s: the mixture's KLD %.6f is not below the recipe's %.6f", recipe, k_mix, k_fixed);
}

static void q4_k_m_budget(void) { recipe_budget("Q4_K_M"); }
static void q3_k_m_budget(void) { recipe_budget("Q3_K_M"); }

void run_tests(void) {
    TEST(setup);
    if (!g_f16[0]) return;
    TEST(budget_between_steps);
    TEST(q4_k_m_budget);
    TEST(q3_k_m_budget);
}

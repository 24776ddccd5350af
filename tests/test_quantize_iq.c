/* test_quantize_iq.c - the i-quant, ternary and MXFP4 recipes end to end on tiny-llama-kjv:
 * llama.cpp's per-tensor mixture rules (checked tensor by tensor against the rules as
 * llama-quant.cpp states them), the refusal of i-quant recipes without an importance matrix,
 * the runtime reading the new types (smelt ppl of an IQ2_XS file equals smelt ppl of its
 * dequantized F32 weights), and with LLAMA_CPP_BIN whole-file byte identity with
 * `llama-quantize --imatrix` for every new recipe (imatrix from llama-imatrix), plus
 * llama-perplexity on smelt's IQ2_XS file equal to its perplexity on its own. */
#include "testlib.h"

#include "formats/formats.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const RECIPES[] = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S",
                                      "IQ3_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4_MOE"};
#define N_RECIPES (sizeof RECIPES / sizeof RECIPES[0])

static char g_src[1024], g_im[1024];

/* The type of tensor `name` in a GGUF file, or -1. */
static int tensor_type(const char *path, const char *name) {
    sm_gguf *g = NULL;
    if (sm_gguf_open(path, &g) != 0) return -1;
    int t = -1;
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++)
        if (!strcmp(sm_gguf_tensor(g, i)->name, name)) t = (int)sm_gguf_tensor(g, i)->type;
    sm_gguf_close(g);
    return t;
}

static double ppl_of(const char *model) {
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "ppl '%s' -f '%s' -c 256 --chunks 4 -t 2 --json", model, tl_asset("text/kjv-eval.txt"));
    double v = -1;
    if (tl_run_smelt(args, &out) == 0 && out) {
        const char *brace = strchr(out, '{');
        cJSON *j = brace ? cJSON_Parse(brace) : NULL;
        const cJSON *p = j ? cJSON_GetObjectItem(j, "ppl") : NULL;
        if (cJSON_IsNumber(p)) v = p->valuedouble;
        cJSON_Delete(j);
    }
    free(out);
    return v;
}

static void setup(void) {
    char args[4096];
    snprintf(g_src, sizeof g_src, "%s", tl_tmp("kjv-f32.gguf"));
    snprintf(g_im, sizeof g_im, "%s", tl_tmp("imatrix.gguf"));
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f32 --quiet", tl_asset("models/tiny-llama-kjv"), g_src);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "imatrix '%s' --text '%s' -o '%s' -c 256 --chunks 4 --quiet", g_src,
             tl_asset("text/kjv-calib.txt"), g_im);
    CHECK(tl_run_smelt(args, NULL) == 0);
}

/* llama.cpp refuses the i-quant recipes whose tensors get IQ1/IQ2/IQ3_XXS without an imatrix. */
static void refusals(void) {
    static const char *const need[] = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ1_S", "IQ1_M"};
    char args[4096], *out = NULL;
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        remove(tl_tmp("refused.gguf"));
        snprintf(args, sizeof args, "quantize '%s' '%s' %s", g_src, tl_tmp("refused.gguf"), need[i]);
        CHECK(tl_run_smelt(args, &out) != 0);
        CHECK_MSG(out && strstr(out, "needs an importance matrix") && strstr(out, "tensor blk."), "%s: %s", need[i],
                  out ? out : "");
        CHECK_MSG(tl_slurp(tl_tmp("refused.gguf"), NULL) == NULL, "%s left an output file", need[i]);
        free(out);
        out = NULL;
    }
    /* IQ3_S, IQ3_M, TQ1_0, TQ2_0 and MXFP4_MOE do not need one (IQ3_XS does here: its middle
     * layers' ffn_gate/ffn_up get IQ3_XXS) */
    static const char *const free_ok[] = {"IQ3_S", "IQ3_M", "TQ1_0", "TQ2_0", "MXFP4_MOE"};
    for (size_t i = 0; i < sizeof free_ok / sizeof *free_ok; i++) {
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", g_src, tl_tmp("ok.gguf"), free_ok[i]);
        CHECK_MSG(tl_run_smelt(args, NULL) == 0, "%s without an imatrix", free_ok[i]);
    }
}

/* The mixtures, from llama-quant.cpp's rules for a 4-layer model with n_gqa = 2 (< 4), untied
 * output, no experts (n_layer/8 = 0: no "first layers" exceptions; IQ3_XS's middle layers
 * [n/8, 7n/8) = blocks 0-2 get IQ3_XXS ffn_gate/ffn_up). */
static void mixtures(void) {
    static const struct { const char *recipe; sm_type out, embd, attn_v, attn_q, attn_out, ffn_down, ffn_up; } M[] = {
        {"IQ2_XXS", SM_TYPE_Q5_K, SM_TYPE_Q2_K, SM_TYPE_Q2_K, SM_TYPE_IQ2_XXS, SM_TYPE_IQ2_XXS, SM_TYPE_IQ2_XXS, SM_TYPE_IQ2_XXS},
        {"IQ2_XS", SM_TYPE_Q5_K, SM_TYPE_Q2_K, SM_TYPE_Q2_K, SM_TYPE_IQ2_XS, SM_TYPE_IQ2_XS, SM_TYPE_IQ2_XS, SM_TYPE_IQ2_XS},
        {"IQ2_S", SM_TYPE_Q5_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ2_XS, SM_TYPE_IQ3_S, SM_TYPE_IQ2_XS, SM_TYPE_IQ2_XS},
        {"IQ2_M", SM_TYPE_Q5_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ2_S, SM_TYPE_IQ3_S, SM_TYPE_IQ2_S, SM_TYPE_IQ2_S},
        {"IQ1_S", SM_TYPE_Q5_K, SM_TYPE_Q2_K, SM_TYPE_Q2_K, SM_TYPE_IQ1_S, SM_TYPE_IQ2_XXS, SM_TYPE_IQ1_S, SM_TYPE_IQ1_S},
        {"IQ1_M", SM_TYPE_Q5_K, SM_TYPE_Q2_K, SM_TYPE_Q2_K, SM_TYPE_IQ1_M, SM_TYPE_IQ2_XXS, SM_TYPE_IQ1_M, SM_TYPE_IQ1_M},
        {"IQ3_XXS", SM_TYPE_Q5_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_XXS, SM_TYPE_IQ2_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_XXS, SM_TYPE_IQ3_XXS},
        {"IQ3_XS", SM_TYPE_Q6_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_XXS, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_XXS},
        {"IQ3_S", SM_TYPE_Q6_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S},
        {"IQ3_M", SM_TYPE_Q6_K, SM_TYPE_IQ3_S, SM_TYPE_Q4_K, SM_TYPE_IQ3_S, SM_TYPE_Q4_K, SM_TYPE_IQ3_S, SM_TYPE_IQ3_S},
        {"TQ1_0", SM_TYPE_Q6_K, SM_TYPE_Q4_K, SM_TYPE_TQ1_0, SM_TYPE_TQ1_0, SM_TYPE_TQ1_0, SM_TYPE_TQ1_0, SM_TYPE_TQ1_0},
        {"TQ2_0", SM_TYPE_Q6_K, SM_TYPE_Q4_K, SM_TYPE_TQ2_0, SM_TYPE_TQ2_0, SM_TYPE_TQ2_0, SM_TYPE_TQ2_0, SM_TYPE_TQ2_0},
        {"MXFP4_MOE", SM_TYPE_Q8_0, SM_TYPE_Q8_0, SM_TYPE_Q8_0, SM_TYPE_Q8_0, SM_TYPE_Q8_0, SM_TYPE_Q8_0, SM_TYPE_Q8_0},
    };
    char args[4096];
    for (size_t i = 0; i < sizeof M / sizeof *M; i++) {
        const char *f = tl_tmp("mix.gguf");
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --imatrix '%s' --quiet", g_src, f, M[i].recipe, g_im);
        CHECK_MSG(tl_run_smelt(args, NULL) == 0, "%s", M[i].recipe);
        const struct { const char *name; sm_type want; } T[] = {
            {"output.weight", M[i].out}, {"token_embd.weight", M[i].embd}, {"blk.2.attn_v.weight", M[i].attn_v},
            {"blk.1.attn_q.weight", M[i].attn_q}, {"blk.0.attn_output.weight", M[i].attn_out},
            {"blk.0.ffn_down.weight", M[i].ffn_down}, {"blk.1.ffn_up.weight", M[i].ffn_up}};
        for (size_t k = 0; k < sizeof T / sizeof *T; k++) {
            int got = tensor_type(f, T[k].name);
            CHECK_MSG(got == (int)T[k].want, "%s: %s is %s, llama.cpp's rules give %s", M[i].recipe, T[k].name,
                      sm_type_name((sm_type)got), sm_type_name(T[k].want));
        }
    }
}

/* The runtime multiplies with the new types through their dequantizers: the perplexity of an
 * IQ2_XS file equals that of its weights dequantized to F32. */
static void runtime_reads_them(void) {
    char args[4096];
    snprintf(args, sizeof args, "quantize '%s' '%s' IQ2_XS --imatrix '%s' --quiet", g_src, tl_tmp("iq2xs.gguf"), g_im);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' F32 --allow-requantize --quiet", tl_tmp("iq2xs.gguf"), tl_tmp("deq.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    const double a = ppl_of(tl_tmp("iq2xs.gguf")), b = ppl_of(tl_tmp("deq.gguf"));
    CHECK_MSG(a > 1 && a == b, "IQ2_XS ppl %g, its dequantized F32 weights %g", a, b);
}

/* GPTQ has no grid for the i-quants: their linears are rounded with diag(H) as importance,
 * and the report says so. */
static void gptq_falls_back(void) {
    char args[4096], *out = NULL;
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:IQ2_XS --samples 2 --seqlen 32 -o '%s' --quiet --json",
             g_src, tl_asset("text/kjv-calib.txt"), tl_tmp("gptq-iq.gguf"));
    CHECK(tl_run_smelt(args, &out) == 0);
    const char *brace = out ? strchr(out, '{') : NULL;
    cJSON *j = brace ? cJSON_Parse(brace) : NULL;
    const cJSON *lin = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0),
                                                              "linears"), 0);
    const cJSON *m = cJSON_GetObjectItem(lin, "method"), *t = cJSON_GetObjectItem(lin, "type");
    CHECK_MSG(cJSON_IsString(m) && !strcmp(m->valuestring, "importance_rounding") && cJSON_IsFalse(cJSON_GetObjectItem(lin, "gptq")),
              "gptq --json: %s", out ? out : "");
    CHECK_MSG(cJSON_IsString(t) && !strcmp(t->valuestring, "iq2_xs"), "linear 0's type");
    cJSON_Delete(j);
    free(out);
    out = NULL;
    snprintf(args, sizeof args, "gptq --help");
    CHECK(tl_run_smelt(args, &out) == 0 && out && strstr(out, "importance-weighted rounding"));
    free(out);
}

static void same_files_as_llama_quantize(void) {
    const char *bin = tl_llama_cpp_bin("byte comparison with llama-quantize --imatrix");
    if (!bin) return;
    char args[8192], im[1024];
    snprintf(im, sizeof im, "%s", tl_tmp("llama-imatrix.gguf"));
    snprintf(args, sizeof args, "%s/llama-imatrix -m '%s' -f '%s' -c 256 --chunks 4 -t 2 -o '%s' > '%s' 2>&1", bin, g_src,
             tl_asset("text/kjv-calib.txt"), im, tl_tmp("li.log"));
    CHECK(system(args) == 0);
    int same = 0;
    for (size_t i = 0; i < N_RECIPES; i++) {
        snprintf(args, sizeof args, "%s/llama-quantize --imatrix '%s' '%s' '%s' %s 2 > '%s' 2>&1", bin, im, g_src,
                 tl_tmp("lq.gguf"), RECIPES[i], tl_tmp("lq.log"));
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --imatrix '%s' --quiet", g_src, tl_tmp("sq.gguf"), RECIPES[i], im);
        CHECK(tl_run_smelt(args, NULL) == 0);
        const bool eq = tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
        CHECK_MSG(eq, "%s: smelt quantize's file differs from llama-quantize --imatrix's", RECIPES[i]);
        same += eq;
        if (!strcmp(RECIPES[i], "IQ2_XS")) {
            /* llama-perplexity on both files (identical bytes give identical numbers; this checks llama.cpp reads ours) */
            const double p[2] = {tl_llama_ppl(bin, tl_tmp("sq.gguf"), tl_asset("text/kjv-eval.txt"), 256, 4),
                                 tl_llama_ppl(bin, tl_tmp("lq.gguf"), tl_asset("text/kjv-eval.txt"), 256, 4)};
            CHECK_MSG(p[0] > 1 && p[0] == p[1], "llama-perplexity: smelt's IQ2_XS file %g, llama-quantize's %g", p[0], p[1]);
        }
    }
    /* without an imatrix, the recipes that allow it */
    snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' IQ3_M 2 > '%s' 2>&1", bin, g_src, tl_tmp("lq.gguf"), tl_tmp("lq.log"));
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' IQ3_M --quiet", g_src, tl_tmp("sq.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    CHECK_MSG(tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf")), "IQ3_M without imatrix differs from llama-quantize's");
    fprintf(stderr, "  %d of %zu recipes byte-identical to llama-quantize --imatrix\n", same, N_RECIPES);
}

void run_tests(void) {
    TEST(setup);
    TEST(refusals);
    TEST(mixtures);
    TEST(runtime_reads_them);
    TEST(gptq_falls_back);
    TEST(same_files_as_llama_quantize);
}

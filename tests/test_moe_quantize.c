/* test_moe_quantize.c - smelt quantize of mixture-of-experts GGUFs (an 8-expert Mixtral-style
 * llama and a 6-expert Qwen3-MoE, tests/moe_testlib.c): the 3-D expert tensors are quantized one
 * expert at a time with that expert's importance row, the router (ffn_gate_inp) stays F32, an
 * imatrix made for another model is refused; with LLAMA_CPP_BIN, whole-file byte identity with
 * llama-quantize for every recipe both know, with a per-expert GGUF imatrix (one expert with no
 * tokens), with its legacy .dat form, and without an imatrix where the recipe allows. */
#include "moe_testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>

static const char *const RECIPES[] = {
    "Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",    "Q8_0",    "Q2_K",   "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M",  "Q6_K",    "IQ4_NL", "IQ4_XS", "IQ3_S",  "IQ3_M",  "IQ3_XS",
    "IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",   "IQ1_S",  "IQ1_M",  "TQ1_0",  "TQ2_0",  "MXFP4_MOE",
    "F16",    "BF16"};
#define N_RECIPES (sizeof RECIPES / sizeof RECIPES[0])
/* the recipes llama-quantize runs without an importance matrix */
static const char *const NO_IMATRIX[] = {"Q4_0", "Q3_K_M", "Q4_K_M", "IQ4_XS", "IQ3_M", "MXFP4_MOE"};
#define N_NO_IMATRIX (sizeof NO_IMATRIX / sizeof NO_IMATRIX[0])

typedef struct fixture {
    const tm_moe *cfg;
    char gguf[1024], im[1024], dat[1024];
} fixture;
static fixture F[2] = {{&TM_MIXTRAL, {0}, {0}, {0}}, {&TM_QWEN3MOE, {0}, {0}, {0}}};

static void setup(void) {
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-moe.gguf", F[i].cfg->arch);
        snprintf(F[i].gguf, sizeof F[i].gguf, "%s", tl_tmp(name));
        snprintf(name, sizeof name, "%s-imatrix.gguf", F[i].cfg->arch);
        snprintf(F[i].im, sizeof F[i].im, "%s", tl_tmp(name));
        snprintf(name, sizeof name, "%s-imatrix.dat", F[i].cfg->arch);
        snprintf(F[i].dat, sizeof F[i].dat, "%s", tl_tmp(name));
        CHECK(tm_make_moe(F[i].gguf, F[i].cfg) == 0);
        CHECK(tm_make_imatrix(F[i].gguf, F[i].im, false) == 0);
        CHECK(tm_make_imatrix(F[i].gguf, F[i].dat, true) == 0);
    }
}

static const sm_tensor *find(sm_gguf *g, const char *name) { return sm_gguf_find_tensor(g, name); }

/* expert x of a quantized 3-D tensor is the quantization of expert x's rows alone, with expert
 * x's importance row: quantizing the same rows as a 2-D tensor with that row gives its bytes */
static void per_expert_rows(void) {
    char args[4096];
    const fixture *f = &F[0];
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_S --imatrix '%s' --quiet", f->gguf, tl_tmp("q.gguf"), f->im);
    CHECK(tl_run_smelt(args, NULL) == 0);
    sm_gguf *src = NULL, *q = NULL;
    sm_imatrix im = {0};
    if (sm_gguf_open(f->gguf, &src) || sm_gguf_open(tl_tmp("q.gguf"), &q) || sm_imatrix_load(f->im, &im)) {
        CHECK_MSG(0, "opening the files: %s", sm_last_error());
        goto done;
    }
    const sm_tensor *gi = find(q, "blk.3.ffn_gate_inp.weight");
    CHECK_MSG(gi && gi->type == SM_TYPE_F32, "the router stays F32");
    const sm_tensor *s = find(src, "blk.3.ffn_up_exps.weight"), *t = find(q, "blk.3.ffn_up_exps.weight");
    CHECK(s && t && t->n_dims == 3 && t->shape[0] == 8 && t->type == SM_TYPE_Q4_K);
    if (!s || !t || t->type != SM_TYPE_Q4_K) goto done;
    const int64_t rows = s->shape[1], cols = s->shape[2];
    const uint64_t qrow = sm_type_row_bytes(SM_TYPE_Q4_K, cols);
    void *buf = malloc(qrow * (uint64_t)rows);
    for (int64_t x = 0; x < 8 && buf; x++) {
        const float *w = sm_imatrix_find(&im, "blk.3.ffn_up_exps.weight", cols, x);
        CHECK(w != NULL);
        sm_quantize_rows(SM_TYPE_Q4_K, (const float *)s->data + x * rows * cols, buf, rows, cols, w);
        CHECK_MSG(!memcmp(buf, (const uint8_t *)t->data + (uint64_t)x * rows * qrow, qrow * (uint64_t)rows),
                  "expert %lld of blk.3.ffn_up_exps differs from its rows quantized with its own importance row",
                  (long long)x);
    }
    free(buf);
done:
    sm_imatrix_free(&im);
    if (src) sm_gguf_close(src);
    if (q) sm_gguf_close(q);
}

/* an imatrix made for the 6-expert model does not fit the 8-expert one: refused, named, no file */
static void refusals(void) {
    char args[4096], *out = NULL;
    remove(tl_tmp("bad.gguf"));
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --imatrix '%s'", F[0].gguf, tl_tmp("bad.gguf"), F[1].im);
    CHECK(tl_run_smelt(args, &out) != 0);
    CHECK_MSG(out && strstr(out, "not made for this model") && strstr(out, F[1].im), "%s", out ? out : "");
    CHECK(tl_slurp(tl_tmp("bad.gguf"), NULL) == NULL);
    free(out);
    out = NULL;
    snprintf(args, sizeof args, "quantize '%s' '%s' IQ2_XXS", F[1].gguf, tl_tmp("bad.gguf"));
    CHECK(tl_run_smelt(args, &out) != 0);
    CHECK_MSG(out && strstr(out, "needs an importance matrix"), "%s", out ? out : "");
    free(out);
}

static bool same_as_llama(const char *bin, const fixture *f, const char *recipe, const char *im) {
    char args[8192], imarg[1100] = "";
    if (im) snprintf(imarg, sizeof imarg, "--imatrix '%s'", im);
    snprintf(args, sizeof args, "%s/llama-quantize %s '%s' '%s' %s 2 > '%s' 2>&1", bin, imarg, f->gguf,
             tl_tmp("lq.gguf"), recipe, tl_tmp("lq.log"));
    const int lrc = system(args);
    CHECK_MSG(lrc == 0, "llama-quantize %s %s failed (log %s)", f->cfg->arch, recipe, tl_tmp("lq.log"));
    snprintf(args, sizeof args, "quantize '%s' '%s' %s %s --quiet", f->gguf, tl_tmp("sq.gguf"), recipe, imarg);
    CHECK_MSG(tl_run_smelt(args, NULL) == 0, "smelt quantize %s %s", f->cfg->arch, recipe);
    const bool eq = lrc == 0 && tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
    CHECK_MSG(eq, "%s %s%s: smelt quantize's file differs from llama-quantize's", f->cfg->arch, recipe,
              im ? (strstr(im, ".dat") ? " (legacy imatrix)" : " (imatrix)") : "");
    if (!eq && lrc == 0) tl_check_same_gguf_tensors(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
    return eq;
}

static void same_files_as_llama_quantize(void) {
    const char *bin = tl_llama_cpp_bin("byte comparison with llama-quantize on expert models");
    if (!bin) return;
    for (int i = 0; i < 2; i++) {
        int same = 0, n = 0;
        for (size_t k = 0; k < N_RECIPES; k++, n++) same += same_as_llama(bin, &F[i], RECIPES[k], F[i].im);
        for (size_t k = 0; k < N_NO_IMATRIX; k++, n++) same += same_as_llama(bin, &F[i], NO_IMATRIX[k], NULL);
        static const char *const legacy[] = {"Q4_K_M", "IQ2_XS"};
        for (size_t k = 0; k < 2; k++, n++) same += same_as_llama(bin, &F[i], legacy[k], F[i].dat);
        fprintf(stderr, "  %s (%d experts): %d of %d quantizations byte-identical to llama-quantize\n", F[i].cfg->arch,
                F[i].cfg->n_expert, same, n);
    }
}

void run_tests(void) {
    TEST(setup);
    TEST(per_expert_rows);
    TEST(refusals);
    TEST(same_files_as_llama_quantize);
}

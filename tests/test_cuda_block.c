/* test_cuda_block.c - the one decoder-block description (model/block_desc.c) run by the CUDA
 * executor (kernels/cuda/block_exec.cu) agrees with the CPU executor on every architecture
 * fixture: Qwen3 (q/k norm), Gemma 2 (GELU-tanh, embedding scale, pre/post norms, attention and
 * final soft-capping, sliding window 8), Gemma 3 (q/k norm, sliding layers with their local rope
 * base, a global layer with linear scaling), Phi-3 (fused qkv / gate_up) and a Phi-4-mini-style
 * variant (longrope with the long factors in use, partial rotary 0.75):
 *  - the whole forward (sm_context_new_on cuda) gives the CPU's logits, in two calls so that the
 *    second reads the KV cache the first wrote;
 *  - the calibration block (sm_model_cuda_block_*, the same executor plus an observer) gives the
 *    CPU block's output for every layer, and its FFN-input Hessian agrees with one built from the
 *    CPU observer;
 *  - through the CLI: `smelt ppl --device cuda` on the HF directory equals `--device cpu`, and
 *    `smelt gptq --device cuda` runs the block (fused linears, extra norms) and its Q4_0 file scores
 *    like the CPU run's.
 * The plugin is $SMELT_CUDA_PLUGIN (scripts/check_cuda.sh: the real one on a GPU) or else the
 * host emulation $SMELT_CUDA_EMU_PLUGIN (tests/cuda_emu/), which runs the plugin's own sources. */
#include "arch_testlib.h"

#include "kernels/kernels.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T 24
#define SPLIT 10

static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)a[i]));
    }
    return d / fmax(mx, 1.0);
}

static int eval_on(const sm_model *m, sm_device dev, int n_ctx, const int32_t *toks, float *logits) {
    sm_context *c = NULL;
    if (sm_context_new_on(m, dev, n_ctx, 7, &c)) return -1;
    const int64_t V = sm_model_hparams(m)->n_vocab;
    const int rc = sm_model_eval(m, c, toks, SPLIT, 0, 0, logits) ||
                   sm_model_eval(m, c, toks + SPLIT, T - SPLIT, SPLIT, 0, logits + SPLIT * V);
    sm_context_free(c);
    return rc ? -1 : 0;
}

/* every block on the CPU (block context + observer) and on the CUDA calibration block */
typedef struct hess {
    double *h;
    int64_t n;
} hess;

static int cpu_observer(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                        int64_t n_tok) {
    (void)layer;
    hess *h = user;
    if (which != SM_IN_FFN) return 0;
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++)
            for (int64_t t = 0; t < n_tok; t++) h->h[i * cols + j] += (double)x[i * ld + t] * x[j * ld + t];
    return 0;
}

static void blocks(const char *name, const sm_model *m, const int32_t *toks) {
    const sm_hparams *hp = sm_model_hparams(m);
    const int64_t E = hp->n_embd;
    float *xc = malloc(sizeof(float) * T * (size_t)E), *xg = malloc(sizeof(float) * T * (size_t)E);
    hess hc = {calloc((size_t)(E * E), sizeof(double)), E};
    double *hg = malloc(sizeof(double) * (size_t)(E * E));
    sm_context *ctx = NULL;
    sm_cuda_block *gb = NULL;
    sm_cuda_syrk *dh[SM_CUDA_IN_COUNT] = {0};
    CHECK_OK(sm_context_new_block(m, T, T, &ctx));
    CHECK_OK(sm_model_cuda_block_new(m, T, &gb));
    CHECK_OK(sm_cuda_syrk_new(E, &dh[SM_CUDA_IN_FFN]));
    CHECK_OK(sm_model_embed(m, toks, T, xc));
    if (!ctx || !gb || !dh[SM_CUDA_IN_FFN] || !xc || !xg || !hc.h || !hg) goto done;
    CHECK_OK(sm_context_set_observer(ctx, cpu_observer, &hc));
    double worst = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        memcpy(xg, xc, sizeof(float) * T * (size_t)E);
        CHECK_OK(sm_model_cuda_block_load(m, l, gb, NULL));
        CHECK_OK(sm_model_eval_block(m, ctx, l, NULL, xc, T, 0));
        CHECK_OK(sm_cuda_block_run(gb, xg, T, -1, dh));
        worst = fmax(worst, rel_diff(xc, xg, (size_t)(T * E)));
    }
    CHECK_OK(sm_cuda_syrk_read(dh[SM_CUDA_IN_FFN], hg));
    double hd = 0, hmax = 1e-30;
    for (int64_t i = 0; i < E * E; i++) {
        hd = fmax(hd, fabs(hc.h[i] - hg[i]));
        hmax = fmax(hmax, fabs(hc.h[i]));
    }
    fprintf(stderr, "  %s: calibration block outputs agree to %.3g, FFN-input Hessians to %.3g (of the largest)\n",
            name, worst, hd / hmax);
    CHECK_MSG(worst < 1e-4, "%s: CUDA block output differs from the CPU's by %.3g", name, worst);
    CHECK_MSG(hd / hmax < 1e-4, "%s: Hessians differ by %.3g", name, hd / hmax);
done:
    sm_cuda_syrk_free(dh[SM_CUDA_IN_FFN]);
    sm_cuda_block_free(gb);
    sm_context_free(ctx);
    free(xc);
    free(xg);
    free(hc.h);
    free(hg);
}

/* `smelt ARGS --json` -> the number after "key": (0 on failure, recorded) */
static double smelt_number(const char *args, const char *key) {
    char *out = NULL, k[64];
    const int rc = tl_run_smelt(args, &out);
    CHECK_MSG(rc == 0, "smelt %s: %s", args, out ? out : "");
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = out ? strstr(out, k) : NULL;
    const double v = p ? strtod(p + strlen(k), NULL) : 0;
    free(out);
    return v;
}

static double ppl_on(const char *model, const char *device) {
    char args[2048];
    snprintf(args, sizeof args, "ppl %s --text %s --ctx 32 --chunks 3 --device %s --json", model, tl_asset(TA_CALIB_TEXT),
             device);
    return smelt_number(args, "ppl");
}

static void cli(const char *name, const char *dir) {
    const double cpu = ppl_on(dir, "cpu"), gpu = ppl_on(dir, "cuda");
    fprintf(stderr, "  %s: smelt ppl cpu %.6f, cuda %.6f\n", name, cpu, gpu);
    CHECK_MSG(cpu > 1 && fabs(gpu / cpu - 1) < 1e-4, "%s: ppl cpu %g vs cuda %g", name, cpu, gpu);
    double q[2];
    for (int d = 0; d < 2; d++) {
        char args[2048], out[64];
        snprintf(out, sizeof out, "gptq-%s.gguf", d ? "cuda" : "cpu");
        snprintf(args, sizeof args, "gptq %s --calib %s --samples 2 --seqlen 32 --to gguf:Q4_0 --device %s -o %s --json", dir,
                 tl_asset(TA_CALIB_TEXT), d ? "cuda" : "cpu", tl_tmp(out));
        smelt_number(args, "device");
        q[d] = ppl_on(tl_tmp(out), "cpu");
    }
    fprintf(stderr, "  %s: gptq Q4_0 ppl (cpu run) %.6f, (cuda run) %.6f\n", name, q[0], q[1]);
    CHECK_MSG(q[0] > 1 && fabs(q[1] / q[0] - 1) < 0.01, "%s: gptq on cuda scores %g, on the cpu %g", name, q[1], q[0]);
}

static void check_arch(const char *name, const char *dir) {
    CHECK_MSG(dir != NULL, "%s: no fixture", name);
    if (!dir) return;
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(dir, NULL, &m));
    if (!m) return;
    const int64_t V = sm_model_hparams(m)->n_vocab;
    int32_t toks[T];
    toks[0] = 1;
    for (int i = 1; i < T; i++) toks[i] = (int32_t)((i * 37 + 11) % V);
    float *cpu = malloc(sizeof(float) * T * (size_t)V), *gpu = malloc(sizeof(float) * T * (size_t)V);
    CHECK_OK(eval_on(m, SM_DEVICE_CPU, T, toks, cpu));
    const int rc = eval_on(m, SM_DEVICE_CUDA, T, toks, gpu);
    CHECK_MSG(rc == 0, "%s on CUDA: %s", name, sm_last_error());
    if (rc == 0) {
        const double d = rel_diff(cpu, gpu, (size_t)(T * V));
        fprintf(stderr, "  %s: CUDA logits agree with the CPU's to %.3g (of the largest)\n", name, d);
        CHECK_MSG(d < 1e-4, "%s: CUDA logits differ by %.3g", name, d);
    }
    blocks(name, m, toks);
    cli(name, dir);
    free(cpu);
    free(gpu);
    sm_model_free(m);
}

static void qwen3(void) { check_arch("qwen3", tl_make_qwen3_tiny(false)); }
static void gemma2(void) { check_arch("gemma2", tl_make_gemma2_tiny()); }
static void gemma3(void) { check_arch("gemma3", tl_make_gemma3_tiny(false)); }
static void phi3(void) { check_arch("phi3", tl_make_phi3_tiny()); }

/* Phi-4-mini-style: longrope (original context 16 < the 24 positions: the long factors) and
 * partial_rotary_factor 0.75 (12 of 16 dimensions rotated, 6 factors) */
static void phi4_mini(void) {
    const char *base = tl_make_phi3_tiny();
    char dir[1024];
    const char *d = base ? ta_edit_config(base, "cuda-phi4-mini",
                                          "s/\"original_max_position_embeddings\": 4096/\"original_max_position_embeddings\": 16/;"
                                          "s/\"rope_scaling\": null/\"rope_scaling\": {\"long_factor\": [1.0, 1.5, 2.5, 4.5, 8.0, "
                                          "14.0], \"short_factor\": [1.0, 1.1, 1.25, 1.4, 1.6, 2.0], \"type\": \"longrope\"}, "
                                          "\"partial_rotary_factor\": 0.75/",
                                          dir)
                         : NULL;
    check_arch("phi4-mini (longrope, partial rotary)", d);
}

void run_tests(void) {
    const char *plugin = getenv("SMELT_CUDA_PLUGIN");
    if (!plugin || !*plugin) {
        plugin = getenv("SMELT_CUDA_EMU_PLUGIN");
        if (!plugin || !*plugin) {
            fprintf(stderr, "no CUDA plugin and no emulation plugin (libsmelt_cuda_emu.so): skipped\n");
            exit(77);
        }
        setenv("SMELT_CUDA_PLUGIN", plugin, 1);
    }
    const char *why = "";
    CHECK_MSG(sm_cuda_available(&why), "plugin %s: %s", plugin, why);
    TEST(qwen3);
    TEST(gemma2);
    TEST(gemma3);
    TEST(phi3);
    TEST(phi4_mini);
}

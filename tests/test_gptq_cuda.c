/* test_gptq_cuda.c - GPTQ's GPU path (sm_gptq_opts.device = SM_DEVICE_CUDA) agrees with the
 * CPU path: the Hessian, the inverse Cholesky factor, the quantized weights and the loss
 * report of single linears on every kind of grid, and a whole `smelt gptq --device cuda` run.
 *
 * The calibration forward pass on the GPU (sm_cuda_block) feeds the same Hessians as the CPU's.
 *
 * The plugin comes from $SMELT_CUDA_PLUGIN when it is set (scripts/gpu_check.sh sets it to the
 * real libsmelt_cuda.so on a machine with a GPU), else from $SMELT_CUDA_EMU_PLUGIN: the
 * plugin's own GPTQ sources built against a host emulation of cuBLAS/cuSOLVER/CUDA
 * (tests/cuda_emu/), which checks the host-side logic and every call's column-major
 * bookkeeping without a GPU. Either way the comparison is against the CPU path, which
 * test_gptq.c checks against an independent column-by-column OBS implementation.
 *
 * Tolerances: the two paths sum in different orders, so they agree to rounding (1e-9
 * relative on the Hessian and the factor); a weight that lies on a rounding boundary may then
 * be quantized to the other neighbour, so codes may differ in a few places (at most 0.2%) and
 * the losses then agree to 1e-4 relative (1e-9 when no code differs). */
#include "testlib.h"

#include "calib/calib.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quantize/gptq_internal.h"
#include "quantize/quantize.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KJV_F32 "models/tiny-llama-kjv/f32"
#define CALIB_TEXT "text/kjv-calib.txt"

static uint64_t g_s = 0x2545F4914F6CDD1Dull;
static double gauss(void) {
    double u, v;
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    u = ((double)(g_s >> 11) + 0.5) * 0x1p-53;
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    v = ((double)(g_s >> 11) + 0.5) * 0x1p-53;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ntok x cols inputs (row stride ld) with correlated columns of different scales. */
static float *make_inputs(int64_t ntok, int64_t cols, int64_t ld) {
    float *x = calloc((size_t)(ntok * ld), sizeof(float));
    double z[16];
    for (int64_t t = 0; t < ntok; t++) {
        for (int k = 0; k < 16; k++) z[k] = gauss();
        for (int64_t j = 0; j < cols; j++)
            x[t * ld + j] = (float)((z[j % 16] + 0.5 * z[(j * 7 + 3) % 16] + 0.3 * gauss()) * (1.0 + (double)(j % 5)));
    }
    return x;
}

static double max_abs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

#define NT 700
#define NC 512

static double *g_h; /* the CPU Hessian of the shared inputs */

static void hessian(void) {
    const int64_t ld = NC + 3;
    float *x = make_inputs(NT, NC, ld);
    sm_hessian *cpu = sm_hessian_new(NC), *gpu = sm_hessian_new_on(NC, SM_DEVICE_CUDA);
    CHECK(cpu && gpu);
    if (!cpu || !gpu) {
        fprintf(stderr, "  %s\n", sm_last_error());
        goto done;
    }
    /* two batches on the device (the second spans a different token count) */
    CHECK_OK(sm_hessian_add(cpu, x, NT, ld));
    CHECK_OK(sm_hessian_add(gpu, x, 300, ld));
    CHECK_OK(sm_hessian_add(gpu, x + 300 * ld, NT - 300, ld));
    CHECK(sm_hessian_tokens(gpu) == NT);
    const double *hc = sm_hessian_matrix(cpu), *hg = sm_hessian_matrix(gpu);
    CHECK(hc && hg);
    if (hc && hg) {
        const double d = max_diff(hc, hg, (int64_t)NC * NC), m = max_abs(hc, (int64_t)NC * NC);
        fprintf(stderr, "  Hessian: max |cpu - gpu| = %.3g (max |H| %.3g)\n", d, m);
        CHECK(d <= 1e-12 * m);
        bool sym = true;
        for (int i = 0; i < NC; i++)
            for (int j = 0; j < i; j++) sym &= hg[i * NC + j] == hg[j * NC + i];
        CHECK(sym);
        g_h = malloc(sizeof(double) * NC * NC);
        memcpy(g_h, hc, sizeof(double) * NC * NC);
    }
    /* a non-finite input is refused on the device path too */
    sm_hessian *bad = sm_hessian_new_on(8, SM_DEVICE_CUDA);
    float row[8] = {1, 2, 3, NAN, 5, 6, 7, 8};
    CHECK_FAILS_WITH(sm_hessian_add(bad, row, 1, 8), "must be finite");
    sm_hessian_free(bad);
    /* merging a device accumulator into a CPU one */
    sm_hessian *a = sm_hessian_new(NC), *b = sm_hessian_new_on(NC, SM_DEVICE_CUDA);
    CHECK_OK(sm_hessian_add(a, x, 300, ld));
    CHECK_OK(sm_hessian_add(b, x + 300 * ld, NT - 300, ld));
    CHECK_OK(sm_hessian_merge(a, b));
    const double *hm = sm_hessian_matrix(a);
    CHECK(hm && g_h && max_diff(hm, g_h, (int64_t)NC * NC) <= 1e-12 * max_abs(g_h, (int64_t)NC * NC));
    sm_hessian_free(a);
    sm_hessian_free(b);
done:
    sm_hessian_free(cpu);
    sm_hessian_free(gpu);
    free(x);
}

static void inverse_factor(void) {
    if (!g_h) return;
    const int64_t n = NC;
    double *a1 = malloc(sizeof(double) * n * n), *a2 = malloc(sizeof(double) * n * n);
    double *u1 = malloc(sizeof(double) * n * n), *u2 = malloc(sizeof(double) * n * n);
    memcpy(a1, g_h, sizeof(double) * n * n);
    for (int64_t i = 0; i < n; i++) a1[i * n + i] += 0.01 * g_h[i * n + i] + 1e-3;
    memcpy(a2, a1, sizeof(double) * n * n);
    CHECK_OK(gq_inverse_cholesky_upper(a1, n, u1, SM_DEVICE_CPU));
    CHECK_OK(gq_inverse_cholesky_upper(a2, n, u2, SM_DEVICE_CUDA));
    const double d = max_diff(u1, u2, n * n), m = max_abs(u1, n * n);
    fprintf(stderr, "  U: max |cpu - gpu| = %.3g (max |U| %.3g)\n", d, m);
    CHECK(d <= 1e-9 * m);
    bool lower_zero = true;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) lower_zero &= u2[i * n + j] == 0.0;
    CHECK(lower_zero);
    /* an indefinite matrix: the same refusal, naming the same column */
    for (int64_t i = 0; i < 16 * 16; i++) a1[i] = (i % 17 == 0) ? 1.0 : 0.0;
    a1[5 * 16 + 5] = -1.0;
    memcpy(a2, a1, sizeof(double) * 16 * 16);
    CHECK_FAILS_WITH(gq_inverse_cholesky_upper(a1, 16, u1, SM_DEVICE_CPU), "(column 5 of");
    CHECK_FAILS_WITH(gq_inverse_cholesky_upper(a2, 16, u2, SM_DEVICE_CUDA), "(column 5 of");
    free(a1);
    free(a2);
    free(u1);
    free(u2);
}

/* One configuration on both devices: the losses agree and the quantized weights nearly
 * everywhere. */
static void compare(const char *what, const sm_gptq_opts *base, const float *w, int64_t rows) {
    sm_gptq_opts oc = *base, og = *base;
    oc.device = SM_DEVICE_CPU;
    og.device = SM_DEVICE_CUDA;
    sm_gptq_hinv *pc = NULL, *pg = NULL;
    sm_gptq_result rc, rg;
    memset(&rc, 0, sizeof rc);
    memset(&rg, 0, sizeof rg);
    CHECK_OK(sm_gptq_prepare(g_h, NC, &oc, &pc));
    CHECK_OK(sm_gptq_prepare(g_h, NC, &og, &pg));
    if (pc && pg) {
        CHECK_OK(sm_gptq_quantize(pc, w, rows, &oc, &rc));
        CHECK_OK(sm_gptq_quantize(pg, w, rows, &og, &rg));
    }
    if (rc.deq && rg.deq) {
        int64_t differ = 0;
        for (int64_t i = 0; i < rows * NC; i++) differ += rc.deq[i] != rg.deq[i];
        const double frac = (double)differ / (double)(rows * NC);
        fprintf(stderr, "  %-22s loss rtn %.6g/%.6g gptq %.6g/%.6g (cpu/gpu), %lld of %lld weights differ\n", what,
                rc.loss_rtn, rg.loss_rtn, rc.loss_gptq, rg.loss_gptq, (long long)differ, (long long)(rows * NC));
        CHECK(rc.loss_gptq < rc.loss_rtn);
        CHECK(fabs(rc.loss_rtn - rg.loss_rtn) <= 1e-9 * rc.loss_rtn);
        CHECK(fabs(rc.loss_gptq - rg.loss_gptq) <= (differ ? 1e-4 : 1e-9) * rc.loss_gptq);
        CHECK(frac <= 0.002);
        if (rc.packed || rg.packed)
            CHECK(rc.packed && rg.packed && rc.packed_bytes == rg.packed_bytes);
        else
            CHECK(rc.codes && rg.codes && rc.n_groups == rg.n_groups);
    }
    sm_gptq_result_free(&rc);
    sm_gptq_result_free(&rg);
    sm_gptq_hinv_free(pc);
    sm_gptq_hinv_free(pg);
}

static void gptq_grids(void) {
    if (!g_h) return;
    const int64_t rows = 40;
    float *w = malloc(sizeof(float) * rows * NC);
    for (int64_t i = 0; i < rows * NC; i++) w[i] = (float)(0.05 * gauss());
    sm_gptq_opts o;
    sm_gptq_opts_default(&o);
    o.block_size = 96; /* batches that do not line up with the groups */
    o.group_size = 32;
    compare("int4 g32 sym", &o, w, rows);
    o.group_size = 128, o.sym = false, o.act_order = true;
    compare("int4 g128 asym act", &o, w, rows);
    o.group_size = -1, o.act_order = false, o.bits = 8;
    compare("int8 per-row", &o, w, rows);
    o.bits = 3, o.group_size = 64, o.static_groups = true, o.act_order = true;
    compare("int3 g64 static act", &o, w, rows);
    sm_gptq_opts_default(&o);
    o.gguf_type = SM_TYPE_Q4_0;
    compare("Q4_0", &o, w, rows);
    o.gguf_type = SM_TYPE_Q4_K; /* 256-column super-blocks reach past each 128-column batch */
    compare("Q4_K", &o, w, rows);
    o.gguf_type = SM_TYPE_Q6_K, o.block_size = 200;
    compare("Q6_K block 200", &o, w, rows);
    o.gguf_type = SM_TYPE_Q5_1, o.skip_loss = true;
    sm_gptq_hinv *p = NULL;
    sm_gptq_result r;
    o.device = SM_DEVICE_CUDA;
    CHECK_OK(sm_gptq_prepare(g_h, NC, &o, &p));
    CHECK_OK(p ? sm_gptq_quantize(p, w, rows, &o, &r) : -1);
    CHECK(p && r.packed && r.loss_gptq == 0.0);
    if (p) sm_gptq_result_free(&r);
    sm_gptq_hinv_free(p);
    free(w);
}

/* ---- the calibration block: the GPU's forward passes feed the same Hessians ---- */

#define BLK_SAMPLES 3
#define BLK_TOK 48

typedef struct cpu_obs {
    int64_t layer;
    sm_hessian *h[SM_IN_COUNT];
    double *absum[SM_IN_COUNT]; /* per column, the sum of |x| (AWQ's statistics) */
    float *buf;
} cpu_obs;

static int cpu_observe(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                       int64_t n_tok) {
    cpu_obs *o = user;
    if (layer != o->layer || which >= SM_IN_COUNT || !o->h[which]) return 0;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t f = 0; f < cols; f++) {
            o->buf[t * cols + f] = x[f * ld + t];
            o->absum[which][f] += fabs((double)x[f * ld + t]);
        }
    return sm_hessian_add(o->h[which], o->buf, n_tok, cols);
}

/* Every block of a model, full passes over calibration samples on the CPU (block context +
 * observer) and on the GPU block: the four Hessians of every layer agree to float rounding,
 * and so do the block outputs. */
static void calib_block_of(const char *path) {
    sm_model *m = NULL;
    const sm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m || sm_model_tokenizer(m, &tok) || sm_calib_tokenize_file(tok, tl_asset(CALIB_TEXT), false, &ids, &n_ids)) {
        CHECK_MSG(0, "model: %s", sm_last_error());
        sm_model_free(m);
        return;
    }
    const sm_hparams *hp = sm_model_hparams(m);
    const int64_t E = hp->n_embd, L = BLK_TOK, S = BLK_SAMPLES;
    float *xc = malloc(sizeof(float) * (size_t)(S * L * E)), *xg = malloc(sizeof(float) * (size_t)(S * L * E));
    for (int64_t s = 0; s < S; s++) CHECK_OK(sm_model_embed(m, ids + 1000 * s, L, xc + s * L * E));
    memcpy(xg, xc, sizeof(float) * (size_t)(S * L * E));
    sm_context *ctx = NULL;
    sm_cuda_block *gb = NULL;
    CHECK_OK(sm_context_new_block(m, L, L, &ctx));
    CHECK_OK(sm_model_cuda_block_new(m, L, &gb));
    cpu_obs obs = {.buf = malloc(sizeof(float) * (size_t)(L * (hp->n_ff > E ? hp->n_ff : E) * 2))};
    if (ctx) sm_context_set_observer(ctx, cpu_observe, &obs);
    double worst_h = 0, worst_x = 0, worst_a = 0;
    for (int64_t l = 0; ctx && gb && l < hp->n_layer; l++) {
        obs.layer = l;
        sm_hessian *hg[SM_IN_COUNT] = {0};
        sm_cuda_syrk *dh[SM_CUDA_IN_COUNT] = {0};
        for (int i = 0; i < SM_CUDA_IN_COUNT; i++) {
            int64_t rows = 0, cols = 0;
            sm_model_linear_shape(m, l, i == SM_IN_ATTN ? SM_LIN_Q : i == SM_IN_ATTN_OUT ? SM_LIN_O
                                        : i == SM_IN_FFN ? SM_LIN_GATE : SM_LIN_DOWN, &rows, &cols);
            obs.h[i] = sm_hessian_new(cols);
            obs.absum[i] = calloc((size_t)cols, sizeof(double));
            hg[i] = sm_hessian_new_on(cols, SM_DEVICE_CUDA);
            dh[i] = hg[i] ? sm_hessian_device(hg[i]) : NULL;
        }
        CHECK_OK(sm_model_cuda_block_load(m, l, gb, NULL));
        for (int64_t s = 0; s < S; s++) {
            CHECK_OK(sm_model_eval_block(m, ctx, l, NULL, xc + s * L * E, L, 0));
            CHECK(sm_cuda_block_run(gb, xg + s * L * E, L, -1, dh) == 0);
            for (int i = 0; i < SM_CUDA_IN_COUNT; i++) sm_hessian_count(hg[i], L);
        }
        for (int i = 0; i < SM_CUDA_IN_COUNT; i++) {
            const int64_t n = sm_hessian_cols(obs.h[i]);
            const double *a = sm_hessian_matrix(obs.h[i]), *b = sm_hessian_matrix(hg[i]);
            CHECK(a && b && sm_hessian_tokens(hg[i]) == S * L && sm_hessian_tokens(obs.h[i]) == S * L);
            if (a && b) worst_h = fmax(worst_h, max_diff(a, b, n * n) / max_abs(a, n * n));
            /* AWQ's mean |x| per input channel, summed on the device beside the Hessian */
            const double *ga = sm_hessian_device_abs_sums(hg[i]);
            CHECK(ga != NULL && sm_hessian_device_abs_sums(obs.h[i]) == NULL);
            if (ga) worst_a = fmax(worst_a, max_diff(obs.absum[i], ga, n) / max_abs(obs.absum[i], n));
            free(obs.absum[i]);
            obs.absum[i] = NULL;
            sm_hessian_free(obs.h[i]);
            sm_hessian_free(hg[i]);
            obs.h[i] = NULL;
        }
        double mx = 0, d = 0;
        for (int64_t i = 0; i < S * L * E; i++) {
            mx = fmax(mx, fabs(xc[i]));
            d = fmax(d, fabs(xc[i] - xg[i]));
        }
        worst_x = fmax(worst_x, d / mx);
    }
    fprintf(stderr, "  %s, %lld blocks x %d samples: Hessians agree to %.3g, |x| sums to %.3g, block outputs to %.3g "
            "(of the largest)\n",
            strstr(path, "qwen3") ? "qwen3 (q/k norms, head_dim 32, neox rope, GQA)"
            : strstr(path, "qwen2") ? "qwen2 (biases, neox rope, GQA)" : "tiny-llama-kjv", (long long)hp->n_layer,
            BLK_SAMPLES, worst_h, worst_a, worst_x);
    CHECK(worst_h <= 1e-4 && worst_a <= 1e-4 && worst_x <= 1e-4);
    /* a stop point: the pass ends after feeding that input and leaves x alone */
    if (gb) {
        sm_hessian *h = sm_hessian_new_on(E, SM_DEVICE_CUDA);
        sm_cuda_syrk *dh[SM_CUDA_IN_COUNT] = {0};
        dh[SM_CUDA_IN_FFN] = sm_hessian_device(h);
        memcpy(xc, xg, sizeof(float) * (size_t)(L * E));
        CHECK(sm_cuda_block_run(gb, xg, L, SM_CUDA_IN_FFN, dh) == 1);
        CHECK(!memcmp(xc, xg, sizeof(float) * (size_t)(L * E)));
        sm_hessian_free(h);
        float bad[4] = {1, 2, 3, 4};
        CHECK_FAILS_WITH(sm_cuda_block_set(gb, SM_CT_WQ, bad, 4), "values, expected");
        CHECK_FAILS_WITH(sm_cuda_block_run(gb, xg, L + 1000000, -1, NULL), "tokens in a block");
    }
    free(obs.buf);
    sm_cuda_block_free(gb);
    sm_context_free(ctx);
    free(xc);
    free(xg);
    free(ids);
    sm_model_free(m);
}

static void calib_block(void) {
    calib_block_of(tl_asset(KJV_F32));
    const char *qwen2 = tl_make_qwen2_tiny();
    CHECK(qwen2 != NULL);
    if (qwen2) calib_block_of(qwen2);
    const char *qwen3 = tl_make_qwen3_tiny(false);
    CHECK(qwen3 != NULL);
    if (qwen3) calib_block_of(qwen3);
}

static cJSON *run_json(const char *device, char **log) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "gptq %s --calib %s --samples 4 --seqlen 64 --bits 4 --group 32 --to hf -o %s --json --device %s",
             tl_asset(KJV_F32), tl_asset(CALIB_TEXT), tl_tmp(device), device);
    const int rc = tl_run_smelt(cmd, log);
    CHECK_MSG(rc == 0, "smelt %s: %s", cmd, *log ? *log : "");
    return rc == 0 && *log ? cJSON_Parse(*log) : NULL;
}

static void whole_model(void) {
    char *lc = NULL, *lg = NULL;
    cJSON *jc = run_json("cpu", &lc), *jg = run_json("cuda", &lg);
    CHECK(jc && jg);
    if (jc && jg) {
        CHECK(!strcmp(cJSON_GetObjectItem(jg, "device")->valuestring, "cuda"));
        const cJSON *lc0 = cJSON_GetObjectItem(jc, "layers"), *lg0 = cJSON_GetObjectItem(jg, "layers");
        CHECK(cJSON_GetArraySize(lc0) == cJSON_GetArraySize(lg0) && cJSON_GetArraySize(lc0) > 0);
        double worst = 0, total_c = 0, total_g = 0;
        for (int l = 0; l < cJSON_GetArraySize(lc0); l++) {
            const cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(lc0, l), "linears");
            const cJSON *b = cJSON_GetObjectItem(cJSON_GetArrayItem(lg0, l), "linears");
            CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(lg0, l), "hessian_seconds") != NULL);
            for (int i = 0; i < cJSON_GetArraySize(a); i++) {
                const double x = cJSON_GetObjectItem(cJSON_GetArrayItem(a, i), "loss_gptq")->valuedouble;
                const double y = cJSON_GetObjectItem(cJSON_GetArrayItem(b, i), "loss_gptq")->valuedouble;
                worst = fmax(worst, fabs(x - y) / x);
                total_c += x;
                total_g += y;
            }
        }
        fprintf(stderr, "  smelt gptq, every linear of every block: largest relative loss difference %.3g, of the "
                "total %.3g\n", worst, fabs(total_c - total_g) / total_c);
        /* GPTQ's path is chaotic in rounding: one weight quantized to its other neighbour
         * changes the error fed to the rest of its row, and later blocks see the outputs of
         * earlier quantized blocks; so whole runs agree in loss, not bit for bit */
        CHECK(worst <= 0.05);
        CHECK(fabs(total_c - total_g) <= 0.01 * total_c);
    }
    cJSON_Delete(jc);
    cJSON_Delete(jg);
    free(lc);
    free(lg);
}

/* smelt awq on the CPU and with --device cuda (the passes, Hessians and mean |x| on the GPU):
 * the blocks pick the same alphas (all but a near tie or so), the output errors agree within
 * 1% as GPTQ's do, and whether the files are byte-identical is reported. */
static void awq_of(const char *extra, const char *recipe) {
    cJSON *j[2] = {0};
    char *log[2] = {0}, cmd[2048], out[2][512];
    const char *dev[2] = {"cpu", "cuda"};
    for (int d = 0; d < 2; d++) {
        snprintf(out[d], sizeof out[d], "%s", tl_tmp(d ? "awq-cuda.gguf" : "awq-cpu.gguf"));
        snprintf(cmd, sizeof cmd, "awq %s --calib %s --samples 2 --seqlen 64 %s --to gguf:%s -o %s --json --device %s",
                 tl_asset(KJV_F32), tl_asset(CALIB_TEXT), extra, recipe, out[d], dev[d]);
        const int rc = tl_run_smelt(cmd, &log[d]);
        CHECK_MSG(rc == 0, "smelt %s: %s", cmd, log[d] ? log[d] : "");
        j[d] = rc == 0 && log[d] ? cJSON_Parse(log[d]) : NULL;
    }
    CHECK(j[0] && j[1]);
    if (j[0] && j[1]) {
        const cJSON *lc = cJSON_GetObjectItem(j[0], "layers"), *lg = cJSON_GetObjectItem(j[1], "layers");
        CHECK(cJSON_GetArraySize(lc) == cJSON_GetArraySize(lg) && cJSON_GetArraySize(lc) > 0);
        int alphas = 0, same = 0;
        double total_c = 0, total_g = 0;
        for (int l = 0; l < cJSON_GetArraySize(lc); l++) {
            const cJSON *ac = cJSON_GetObjectItem(cJSON_GetArrayItem(lc, l), "awq_alpha");
            const cJSON *ag = cJSON_GetObjectItem(cJSON_GetArrayItem(lg, l), "awq_alpha");
            for (int g = 0; g < cJSON_GetArraySize(ac); g++, alphas++) {
                const cJSON *x = cJSON_GetArrayItem(ac, g), *y = cJSON_GetArrayItem(ag, g);
                same += cJSON_IsNull(x) ? cJSON_IsNull(y) : cJSON_IsNumber(y) && x->valuedouble == y->valuedouble;
            }
            const cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(lc, l), "linears");
            const cJSON *b = cJSON_GetObjectItem(cJSON_GetArrayItem(lg, l), "linears");
            for (int i = 0; i < cJSON_GetArraySize(a); i++) {
                total_c += cJSON_GetObjectItem(cJSON_GetArrayItem(a, i), "loss_gptq")->valuedouble;
                total_g += cJSON_GetObjectItem(cJSON_GetArrayItem(b, i), "loss_gptq")->valuedouble;
            }
        }
        const bool identical = tl_same_file(out[0], out[1]);
        fprintf(stderr, "  smelt awq %s--to gguf:%s: %d of %d alphas the same, total loss differs by %.3g, files %s\n",
                extra, recipe, same, alphas, fabs(total_c - total_g) / total_c, identical ? "identical" : "differ");
        /* the later blocks' inputs differ in rounding (the earlier blocks' outputs), so a
         * choice between two alphas of nearly equal loss may go either way there */
        CHECK(alphas > 0 && 4 * same >= 3 * alphas);
        CHECK(fabs(total_c - total_g) <= 0.01 * total_c);
    }
    for (int d = 0; d < 2; d++) {
        cJSON_Delete(j[d]);
        free(log[d]);
    }
}

static void awq_cuda(void) {
    /* (awq --gptq on Q4_K_M, the true-sequential passes on the device, measured 13 of 16 alphas
     * the same and 0.5% loss difference; left out of the suite for time under the emulation) */
    awq_of("", "Q4_0");
}

static void refusals(void) {
    /* a plugin that does not exist: the device path fails with the loader's reason (checked
     * in a child process, since the plugin is loaded once per process) */
    char *log = NULL;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to hf -o %s --device cuda --quiet", tl_asset(KJV_F32),
             tl_asset(CALIB_TEXT), tl_tmp("refused"));
    CHECK(tl_run_smelt_env(TL_NO_GPU, cmd, &log) == 1 && log && strstr(log, "no usable CUDA device"));
    free(log);
    log = NULL;
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to hf -o %s --device tpu", tl_asset(KJV_F32), tl_asset(CALIB_TEXT),
             tl_tmp("refused"));
    CHECK(tl_run_smelt(cmd, &log) == 2 && log && strstr(log, "--device expects cpu or cuda"));
    free(log);
}

void run_tests(void) {
    const char *plugin = getenv("SMELT_CUDA_PLUGIN");
    if (!plugin || !*plugin) {
        plugin = getenv("SMELT_CUDA_EMU_PLUGIN");
        CHECK_MSG(plugin && *plugin, "no plugin to test: set SMELT_CUDA_PLUGIN, or build with a C++ compiler "
                                     "(libsmelt_cuda_emu.so)");
        if (!plugin || !*plugin) return;
        setenv("SMELT_CUDA_PLUGIN", plugin, 1);
    }
    const char *why = "";
    const int ok = sm_cuda_available(&why);
    fprintf(stderr, "plugin %s: %s\n", plugin, ok ? "available" : why);
    CHECK(ok);
    if (!ok) return;
    TEST(hessian);
    TEST(inverse_factor);
    TEST(gptq_grids);
    TEST(calib_block);
    TEST(whole_model);
    TEST(awq_cuda);
    TEST(refusals);
    free(g_h);
}

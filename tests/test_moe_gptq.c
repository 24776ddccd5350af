/* test_moe_gptq.c - `smelt gptq` on mixtures of experts (the tiny Mixtral and Qwen3-MoE fixtures
 * of tests/testlib.c, converted to F32 GGUF; kjv text: calibration from kjv-calib.txt, evaluation
 * on kjv-eval.txt), Q4_K_M:
 *  - the KLD against the F32 model's logits (smelt ppl --kld) of the GPTQ file is below that of
 *    round-to-nearest (smelt quantize) and below that of importance-weighted quantization with the
 *    importance matrix of the same calibration text (smelt imatrix + smelt quantize --imatrix,
 *    which are llama-imatrix's and llama-quantize's, test_moe_imatrix_collect, test_moe_imatrix);
 *  - the file has every tensor's type as smelt quantize gives it (the router ffn_gate_inp F32);
 *  - the JSON report: every expert of every layer with its routed tokens (k x the calibration
 *    tokens per layer); with --moe-min-tokens between the fewest and the most tokens an expert
 *    got, exactly the experts below it are named starved and rounded with importance;
 *  - AWQ on a mixture of experts is refused with a clear message. */
#include "testlib.h"

#include "convert/convert.h"
#include "formats/formats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 32
#define SEQLEN 64

static double json_num(const char *s, const char *key) {
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    const cJSON *v = cJSON_GetObjectItem(j, key);
    const double r = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    return r;
}

static double kld_of(const char *gguf, const char *base) {
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "ppl '%s' --kld '%s' --json --quiet", gguf, base);
    CHECK(tl_run_smelt(args, &out) == 0);
    const double k = json_num(out, "kld_mean");
    free(out);
    return k;
}

/* Every tensor of a and b has the same name, shape and type. */
static void same_types(const char *a, const char *b) {
    sm_gguf *x = NULL, *y = NULL;
    CHECK_OK(sm_gguf_open(a, &x));
    CHECK_OK(sm_gguf_open(b, &y));
    if (x && y) {
        CHECK(sm_gguf_n_tensors(x) == sm_gguf_n_tensors(y));
        for (size_t i = 0; i < sm_gguf_n_tensors(x); i++) {
            const sm_tensor *t = sm_gguf_tensor(x, i), *u = sm_gguf_find_tensor(y, t->name);
            CHECK_MSG(u && u->type == t->type && u->n_dims == t->n_dims, "%s: %s vs %s", t->name, sm_type_name(t->type),
                      u ? sm_type_name(u->type) : "missing");
            if (strstr(t->name, "ffn_gate_inp")) CHECK_MSG(t->type == SM_TYPE_F32, "%s is %s", t->name, sm_type_name(t->type));
        }
    }
    sm_gguf_close(x);
    sm_gguf_close(y);
}

static char *gptq(const char *f32, const char *out, const char *extra) {
    char args[4096], *log = NULL;
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:Q4_K_M --samples %d --seqlen %d -o '%s' --json --quiet %s",
             f32, tl_asset("text/kjv-calib.txt"), SAMPLES, SEQLEN, out, extra);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "smelt %s: %s", args, log ? log : "");
    return log;
}

static void one(const char *name, const char *(*make)(void), int n_layer, int n_expert, int n_used) {
    const char *dir = make();
    if (!dir) {
        fprintf(stderr, "  (the fixture's tokenizer asset is missing)\n");
        exit(77);
    }
    char f32[600], base[600], rtn[600], im[600], imq[600], gq[600], gq2[600], args[4096], *log = NULL;
#define TMP_OF(buf, suffix) snprintf(buf, sizeof buf, "%s", tl_tmp(suffix))
    char n[64];
    snprintf(n, sizeof n, "%s-f32.gguf", name), TMP_OF(f32, n);
    snprintf(n, sizeof n, "%s-base.logits", name), TMP_OF(base, n);
    snprintf(n, sizeof n, "%s-rtn.gguf", name), TMP_OF(rtn, n);
    snprintf(n, sizeof n, "%s-im.gguf", name), TMP_OF(im, n);
    snprintf(n, sizeof n, "%s-imq.gguf", name), TMP_OF(imq, n);
    snprintf(n, sizeof n, "%s-gptq.gguf", name), TMP_OF(gq, n);
    snprintf(n, sizeof n, "%s-gptq2.gguf", name), TMP_OF(gq2, n);
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, f32, &co, NULL));
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 128 --chunks 16 --save-logits '%s' --quiet", f32,
             tl_asset("text/kjv-eval.txt"), base);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet", f32, rtn);
    CHECK(tl_run_smelt(args, NULL) == 0);
    /* the importance matrix of the calibration tokens GPTQ sees (32 x 64) */
    snprintf(args, sizeof args, "imatrix '%s' --text '%s' --ctx %d --chunks %d -o '%s' --quiet", f32,
             tl_asset("text/kjv-calib.txt"), SEQLEN, SAMPLES, im);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --imatrix '%s' --quiet", f32, imq, im);
    CHECK(tl_run_smelt(args, NULL) == 0);
    log = gptq(f32, gq, "");
    same_types(rtn, gq);
    const double k_rtn = kld_of(rtn, base), k_im = kld_of(imq, base), k_gptq = kld_of(gq, base);
    fprintf(stderr, "  %s Q4_K_M KLD: round-to-nearest %.5f, imatrix %.5f, gptq %.5f\n", name, k_rtn, k_im, k_gptq);
    CHECK(k_gptq < k_rtn && k_gptq < k_im);

    /* the report: every expert, tokens k x samples x seqlen per layer */
    cJSON *j = log ? cJSON_Parse(log) : NULL;
    const cJSON *moe = cJSON_GetObjectItem(j, "moe"), *ex = cJSON_GetObjectItem(moe, "experts");
    CHECK_MSG(cJSON_GetArraySize(ex) == n_layer * n_expert, "%d experts reported", cJSON_GetArraySize(ex));
    int64_t lo = INT64_MAX, hi = 0, per_layer[16] = {0};
    const cJSON *x;
    cJSON_ArrayForEach(x, ex) {
        const int64_t t = (int64_t)cJSON_GetObjectItem(x, "tokens")->valuedouble;
        const int l = (int)cJSON_GetObjectItem(x, "layer")->valuedouble;
        if (l >= 0 && l < 16) per_layer[l] += t;
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    for (int l = 0; l < n_layer; l++)
        CHECK_MSG(per_layer[l] == (int64_t)n_used * SAMPLES * SEQLEN, "layer %d: %lld routed tokens", l, (long long)per_layer[l]);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(moe, "starved")) == 0 || lo < 128);
    cJSON_Delete(j);
    free(log);

    /* a threshold between the fewest and the most: the experts below it are starved */
    const int64_t thr = (lo + hi) / 2 + 1;
    snprintf(args, sizeof args, "--moe-min-tokens %lld", (long long)thr);
    log = gptq(f32, gq2, args);
    j = log ? cJSON_Parse(log) : NULL;
    moe = cJSON_GetObjectItem(j, "moe");
    int n_below = 0, n_named = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(moe, "experts")) {
        const bool below = cJSON_GetObjectItem(x, "tokens")->valuedouble < (double)thr;
        n_below += below;
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(x, "starved")) == below);
        const char *method = cJSON_GetStringValue(cJSON_GetObjectItem(x, "method"));
        CHECK_MSG(method && !strcmp(method, below ? "importance_rounding" : "gptq"), "method %s", method ? method : "-");
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(moe, "starved")) {
        n_named++;
        CHECK(cJSON_GetObjectItem(x, "tokens")->valuedouble < (double)thr);
    }
    fprintf(stderr, "  %s: tokens per expert %lld..%lld; --moe-min-tokens %lld: %d starved expert(s) named, KLD %.5f\n", name,
            (long long)lo, (long long)hi, (long long)thr, n_named, kld_of(gq2, base));
    CHECK(n_below > 0 && n_named == n_below && cJSON_GetNumberValue(cJSON_GetObjectItem(moe, "min_tokens")) == (double)thr);
    cJSON_Delete(j);
    free(log);

    /* AWQ is refused, naming the reason */
    snprintf(args, sizeof args, "gptq '%s' --awq --calib '%s' --to gguf:Q4_K_M --samples 2 --seqlen 32 -o '%s'", f32,
             tl_asset("text/kjv-calib.txt"), tl_tmp("awq.gguf"));
    log = NULL;
    CHECK(tl_run_smelt(args, &log) != 0 && log && strstr(log, "mixture of experts"));
    free(log);
}

static void mixtral(void) { one("mixtral", tl_make_mixtral_tiny, QW_LAYERS, MX_EXPERTS, MX_USED); }
static void qwen3moe(void) { one("qwen3moe", tl_make_qwen3moe_tiny, QW_LAYERS, Q3M_EXPERTS, MX_USED); }

void run_tests(void) {
    TEST(mixtral);
    TEST(qwen3moe);
}

/* test_arch_phi4.c - long-context Phi-3 (longrope) and Phi-4-mini (longrope, partial rotary factor
 * 0.75, tied embeddings, GPT-4o-style BPE tokenizer) end to end, on variants of the tiny Phi-3
 * fixture (tests/testlib.c tl_make_phi3_tiny: same weights, config.json edited as the real
 * checkpoints' configs read; original_max_position_embeddings 32 so that a 64-token context uses
 * the long factors) against the torch references of scripts/make_phi4_reference.py
 * (tests/data/phi4-tiny/: logits of the last 8 positions and the perplexity, for 24 tokens - the
 * short factors - and 64 tokens - the long ones):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's for both lengths;
 *  - the GGUF is what llama.cpp's Phi3MiniModel writes: phi3.rope.scaling.attn_factor right after
 *    general.architecture, rope_factors_long / rope_factors_short first among the tensors,
 *    rope.dimension_count 12 for Phi-4-mini, no output.weight when tied, tokenizer pre "gpt-4o";
 *  - smelt ppl on the HF directory and on the GGUF agree; Q8_0 / Q4_K_M quantize runs;
 *  - configs smelt cannot run as llama.cpp does are refused naming the key;
 *  - with --llama-cpp: llama-quantize's Q8_0 and Q4_K_M files are smelt's byte for byte and
 *    llama-perplexity (-c 64: long factors in both) is within 0.5% of smelt ppl. */
#include "testlib.h"
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V QW_VOCAB
#define LAST 8
#define CALIB_TEXT "text/kjv-calib.txt"

static const char *const LONG8 = "[1.0, 1.25, 1.8, 2.6, 4.0, 6.5, 10.0, 16.0]";
static const char *const SHORT8 = "[1.0, 1.05, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0]";
static const char *const LONG6 = "[1.0, 1.5, 2.5, 4.5, 8.0, 14.0]";
static const char *const SHORT6 = "[1.0, 1.1, 1.25, 1.4, 1.6, 2.0]";

/* Phi-3-mini-128k / Phi-3.5-mini style: longrope with 8 factors, contexts 32 -> 128 */
static const char *make_phi3_long(void) {
    static char dir[1024];
    const char *base = tl_make_phi3_tiny();
    if (!base) return NULL;
    char sed[2048];
    snprintf(sed, sizeof sed,
             "s/\"max_position_embeddings\": 4096/\"max_position_embeddings\": 128/;"
             "s/\"original_max_position_embeddings\": 4096/\"original_max_position_embeddings\": 32/;"
             "s/\"rope_scaling\": null/\"rope_scaling\": {\"long_factor\": %s, \"short_factor\": %s, \"type\": "
             "\"longrope\"}/",
             LONG8, SHORT8);
    /* not named "phi3...": llama.cpp's vocabulary loader then wants an <|endoftext|> token (by general.name) */
    return ta_edit_config(base, "longrope-tiny", sed, dir);
}

/* Phi-4-mini style: partial_rotary_factor 0.75, longrope with 6 factors, tied embeddings (no
 * lm_head.weight), GPT-4o BPE tokenizer (tests/data/bpe-gpt4o) padded to vocab_size 2048 */
static const char *make_phi4_mini(void) {
    static char dir[1024];
    const char *base = tl_make_phi3_tiny();
    if (!base) return NULL;
    char sed[2048];
    snprintf(sed, sizeof sed,
             "s/\"max_position_embeddings\": 4096/\"max_position_embeddings\": 128/;"
             "s/\"original_max_position_embeddings\": 4096/\"original_max_position_embeddings\": 32/;"
             "s/\"rope_scaling\": null/\"rope_scaling\": {\"long_factor\": %s, \"short_factor\": %s, \"type\": "
             "\"longrope\"}, \"partial_rotary_factor\": 0.75/;"
             "s/\"tie_word_embeddings\": false/\"tie_word_embeddings\": true/;"
             "s/\"sliding_window\": 2047/\"sliding_window\": 262144/;"
             "s/\"bos_token_id\": 1/\"bos_token_id\": 676/;s/\"eos_token_id\": 2/\"eos_token_id\": 676/;"
             "s/\"pad_token_id\": 0/\"pad_token_id\": 676/",
             LONG6, SHORT6);
    if (!ta_edit_config(base, "phi4-mini", sed, dir)) return NULL;
    char cmd[4096];
    const char *src = getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..";
    snprintf(cmd, sizeof cmd,
             "rm -f '%s/tokenizer.model' '%s/model.safetensors' && cp '%s/tests/data/bpe-gpt4o/tokenizer.json' "
             "'%s/tests/data/bpe-gpt4o/tokenizer_config.json' '%s'/",
             dir, dir, src, src, dir);
    if (system(cmd)) return NULL;
    /* the weights without lm_head.weight */
    sm_ckpt *c = NULL;
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", base);
    if (sm_ckpt_open(st, &c)) return NULL;
    sm_st_writer *w = sm_st_writer_new();
    for (size_t i = 0; i < c->n_tensors; i++)
        if (strcmp(c->tensors[i].name, "lm_head.weight"))
            sm_st_writer_add(w, c->tensors[i].name, c->tensors[i].type, c->tensors[i].n_dims, c->tensors[i].shape);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    int rc = sm_st_writer_begin(w, st);
    for (size_t i = 0; i < c->n_tensors && rc == 0; i++)
        if (strcmp(c->tensors[i].name, "lm_head.weight")) rc = sm_st_writer_write(w, c->tensors[i].data, c->tensors[i].nbytes);
    rc = rc || sm_st_writer_finish(w);
    sm_ckpt_close(c);
    return rc ? NULL : dir;
}

static void tokens(int32_t *toks, int n) {
    toks[0] = 1;
    for (int i = 1; i < n; i++) toks[i] = (i * 37 + 11) % V;
}

/* logits of n tokens in a context of n positions (n > 32: the long factors) */
static float *eval(const char *path, int n) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return NULL;
    int32_t toks[64];
    tokens(toks, n);
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, n, 7, &c));
    if (!c || sm_model_eval(m, c, toks, n, 0, 0, logits)) {
        CHECK_MSG(0, "eval %s: %s", path, sm_last_error());
        free(logits);
        logits = NULL;
    }
    sm_context_free(c);
    sm_model_free(m);
    return logits;
}

static float *reference(const char *variant, int n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/phi4-tiny/%s_%d.f32", getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..",
             variant, n);
    size_t len = 0;
    float *ref = (float *)tl_slurp(p, &len);
    const bool ok = ref && len == sizeof(float) * (LAST * V + 1);
    CHECK_MSG(ok, "%s: missing or wrong size", p);
    if (!ok) {
        free(ref);
        ref = NULL;
    }
    return ref;
}

/* the last 8 rows within 1e-4 of torch's (relative to the largest logit when above 1), the
 * perplexity within 1e-5 relative: the other fixtures' tolerances */
static void against_torch(const char *variant, const char *what, int n, const float *logits) {
    float *ref = reference(variant, n);
    if (!logits || !ref) {
        free(ref);
        return;
    }
    int32_t toks[64];
    tokens(toks, n);
    const float *mine = logits + (size_t)(n - LAST) * V;
    double worst = 0, big = 1;
    for (int i = 0; i < LAST * V; i++) {
        worst = fmax(worst, fabs((double)mine[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    const double p = ta_ppl_n(logits, toks, n, V), pr = ref[LAST * V];
    fprintf(stderr, "  %s %s %d tokens: max |logit - torch| = %.3g (largest %.3g), ppl %.6f vs torch %.6f\n", variant,
            what, n, worst, big, p, pr);
    CHECK_MSG(worst <= 1e-4 * big, "%s %s %d: logits differ from torch by %g", variant, what, n, worst);
    CHECK_MSG(fabs(p - pr) <= 1e-5 * pr, "%s %s %d: ppl %.9g vs torch %.9g", variant, what, n, p, pr);
    free(ref);
}

static void check_gguf(const char *path, bool phi4, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    /* Phi3MiniModel adds the attention factor while preparing the tensors, before general.type */
    CHECK(sm_gguf_n_kv(g) > 2 && !strcmp(sm_gguf_key(g, 0), "general.architecture") &&
          !strcmp(sm_gguf_key(g, 1), "phi3.rope.scaling.attn_factor"));
    double d = 0;
    CHECK(sm_gguf_get_f64(g, "phi3.rope.scaling.attn_factor", &d) == 0 &&
          (float)d == (float)sqrt(1 + log(4.0) / log(32.0)));
    uint64_t u = 0;
    CHECK(sm_gguf_get_u64(g, "phi3.rope.scaling.original_context_length", &u) == 0 && u == 32);
    CHECK(sm_gguf_get_u64(g, "phi3.context_length", &u) == 0 && u == 128);
    CHECK(sm_gguf_get_u64(g, "phi3.rope.dimension_count", &u) == 0 && u == (phi4 ? 12u : 16u));
    CHECK(sm_gguf_find(g, "phi3.rope.scaling.type") == NULL);
    const int64_t half = phi4 ? 6 : 8;
    static const char *const RF[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (int i = 0; i < 2; i++) {
        const sm_tensor *t = sm_gguf_find_tensor(g, RF[i]);
        CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == half, "%s", RF[i]);
        if (f32) CHECK_MSG(sm_gguf_n_tensors(g) > 2 && !strcmp(sm_gguf_tensor(g, (size_t)i)->name, RF[i]), "%s first", RF[i]);
        if (t && t->data && t->shape[0] == half) { /* the config's values */
            const float want = i ? 2.0f : (phi4 ? 14.0f : 16.0f);
            CHECK(((const float *)t->data)[half - 1] == want);
        }
    }
    CHECK((sm_gguf_find_tensor(g, "output.weight") == NULL) == phi4);
    const char *s = sm_gguf_get_str(g, "tokenizer.ggml.pre");
    CHECK(s && !strcmp(s, phi4 ? "gpt-4o" : "default"));
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, phi4 ? "gpt2" : "llama"));
    sm_gguf_close(g);
}

static void variant(const char *name, const char *dir, bool phi4) {
    CHECK(dir != NULL);
    if (!dir) return;
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s", tl_tmp(phi4 ? "phi4-mini.gguf" : "phi3-long.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    check_gguf(gguf, phi4, true);
    static const int LENS[2] = {24, 64};
    for (int i = 0; i < 2; i++) {
        float *a = eval(dir, LENS[i]);
        against_torch(name, "HF", LENS[i], a);
        float *b = eval(gguf, LENS[i]);
        against_torch(name, "GGUF f32", LENS[i], b);
        free(a);
        free(b);
    }
}

static void phi3_long(void) { variant("phi3long", make_phi3_long(), false); }
static void phi4_mini(void) { variant("phi4mini", make_phi4_mini(), true); }

/* the long factors matter: a 64-token context evaluated with the short ones would differ */
static void long_factors_matter(void) {
    const char *dir = make_phi3_long();
    float *ref = reference("phi3long", 64);
    float *a = dir ? eval(dir, 64) : NULL;
    /* the same weights with long_factor = short_factor */
    char d2[1024], sed[512];
    snprintf(sed, sizeof sed, "s/\"long_factor\": \\[[^]]*\\]/\"long_factor\": %s/", SHORT8);
    float *b = dir && ta_edit_config(dir, "phi3-long-short", sed, d2) ? eval(d2, 64) : NULL;
    double diff = 0;
    for (int i = 0; a && b && i < LAST * V; i++) diff = fmax(diff, fabs((double)a[(64 - LAST) * V + i] - b[(64 - LAST) * V + i]));
    fprintf(stderr, "  long vs short factors at 64 tokens: max logit difference %.3g\n", diff);
    CHECK(a && b && ref && diff > 0.01);
    free(a);
    free(b);
    free(ref);
}

/* smelt imatrix and smelt gptq run through the block on both variants (longrope's long factors at
 * the 64-token calibration length; Phi-4-mini's partial rotary), their GGUFs checked and evaluated */
static void gguf_phi3long(const char *path, bool f32) { check_gguf(path, false, f32); }
static void gguf_phi4mini(const char *path, bool f32) { check_gguf(path, true, f32); }
static void calibration(void) {
    const ta_arch phi3long = {"phi3long-calib", V, make_phi3_long, gguf_phi3long, 0, 0};
    const ta_arch phi4mini = {"phi4mini-calib", V, make_phi4_mini, gguf_phi4mini, 0, 0};
    ta_calibration(&phi3long);
    ta_calibration(&phi4mini);
}

static double smelt_ppl(const char *model, int ctx) {
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "ppl %s --text %s --ctx %d --chunks 4 --json", model, tl_asset(CALIB_TEXT), ctx);
    const int rc = tl_run_smelt(cmd, &out);
    CHECK_MSG(rc == 0, "%s: %s", cmd, out ? out : "");
    const char *p = out ? strstr(out, "\"ppl\":") : NULL;
    const double v = p ? strtod(p + 6, NULL) : 0;
    free(out);
    return v;
}

/* smelt ppl on the HF directories and their GGUFs (the tokenizers run on text: SPM for Phi-3,
 * GPT-4o BPE for Phi-4-mini), and quantize */
static void cli_ppl_quantize(void) {
    const char *dirs[2] = {make_phi3_long(), make_phi4_mini()};
    for (int k = 0; k < 2; k++) {
        if (!dirs[k]) continue;
        char gguf[1024];
        snprintf(gguf, sizeof gguf, "%s", tl_tmp(k ? "phi4-mini-cli.gguf" : "phi3-long-cli.gguf"));
        sm_convert_opts co = {.outtype = "f32", .quiet = true};
        CHECK_OK(sm_convert(dirs[k], gguf, &co, NULL));
        const double a = smelt_ppl(dirs[k], 64), b = smelt_ppl(gguf, 64);
        fprintf(stderr, "  %s smelt ppl (ctx 64): HF %.6f, GGUF %.6f\n", k ? "phi4-mini" : "phi3-long", a, b);
        CHECK(a > 1 && fabs(a - b) <= 1e-6 * a);
        static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
        for (int r = 0; r < 2; r++) {
            char q[1100];
            snprintf(q, sizeof q, "%s-%s.gguf", gguf, RECIPES[r]);
            sm_quantize_opts qo = {.recipe = RECIPES[r], .quiet = true};
            sm_quantize_report qr;
            CHECK_OK(sm_quantize_gguf(gguf, q, &qo, &qr));
            check_gguf(q, k == 1, false);
            const double pq = smelt_ppl(q, 64);
            fprintf(stderr, "  %s %s ppl %.4f\n", k ? "phi4-mini" : "phi3-long", RECIPES[r], pq);
            CHECK(pq > 1 && fabs(pq - a) < 0.5 * a);
        }
    }
}

static void refused(const char *name, const char *sed, const char *msg) {
    const char *dir = make_phi3_long();
    char bad[1024];
    if (!dir || !ta_edit_config(dir, name, sed, bad)) {
        CHECK(0);
        return;
    }
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    char out[1200];
    snprintf(out, sizeof out, "%s.gguf", bad);
    CHECK_FAILS_WITH(sm_convert(bad, out, &co, NULL), msg);
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), msg);
}

static void refusals(void) {
    refused("phi3-attnf", "s/\"type\": \"longrope\"/\"type\": \"longrope\", \"attention_factor\": 1.5/",
            "\"attention_factor\": llama.cpp's converter ignores it");
    refused("phi3-shortf", "s/\"short_factor\": \\[1.0, /\"short_factor\": [/",
            "\"short_factor\": 7 values, expected 8");
    refused("phi3-nolong", "s/\"long_factor\": \\[[^]]*\\], //", "needs \"long_factor\"");
}

/* --llama-cpp: llama-quantize's files equal smelt's (Q8_0, Q4_K_M); llama-perplexity within 0.5% */
static void llama_cpp(void) {
    const char *bin = tl_llama_cpp_bin("llama-quantize / llama-perplexity on the longrope Phi-3 / Phi-4-mini GGUFs");
    if (!bin) return;
    const char *dirs[2] = {make_phi3_long(), make_phi4_mini()};
    for (int k = 0; k < 2; k++) {
        if (!dirs[k]) continue;
        char src[1024], args[4096];
        snprintf(src, sizeof src, "%s", tl_tmp(k ? "phi4-lc.gguf" : "lrope-lc.gguf"));
        sm_convert_opts co = {.outtype = "f32", .quiet = true};
        CHECK_OK(sm_convert(dirs[k], src, &co, NULL));
        static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
        for (int r = 0; r < 2; r++) {
            snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' %s 2 > '%s' 2>&1", bin, src, tl_tmp("lq.gguf"),
                     RECIPES[r], tl_tmp("lq.log"));
            CHECK(system(args) == 0);
            snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", src, tl_tmp("sq.gguf"), RECIPES[r]);
            CHECK(tl_run_smelt(args, NULL) == 0);
            CHECK_MSG(tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf")), "%s %s: smelt quantize's file differs from "
                      "llama-quantize's", k ? "phi4-mini" : "phi3-long", RECIPES[r]);
        }
        const double lp = tl_llama_ppl(bin, src, tl_asset(CALIB_TEXT), 64, 4);
        const double sp = smelt_ppl(src, 64);
        fprintf(stderr, "  %s ppl (ctx 64, long factors): smelt %.4f, llama-perplexity %.4f (%+.3f%%)\n",
                k ? "phi4-mini" : "phi3-long", sp, lp, 100 * (sp - lp) / lp);
        CHECK(sp > 1 && lp > 1 && fabs(sp - lp) <= 0.005 * lp);
    }
}

void run_tests(void) {
    TEST(phi3_long);
    TEST(phi4_mini);
    TEST(long_factors_matter);
    TEST(cli_ppl_quantize);
    TEST(calibration);
    TEST(refusals);
    TEST(llama_cpp);
}

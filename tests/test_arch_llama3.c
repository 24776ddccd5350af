/* test_arch_llama3.c - a Llama 3.2-style checkpoint end to end: llama3 rope scaling (factor 8,
 * low/high frequency factors 1/4, original context 64 so that every branch of the rule is taken),
 * tied embeddings (no lm_head.weight, as Llama 3.2 1B/3B) and Llama 3's byte-level BPE tokenizer
 * (pre-tokenizer llama-bpe), made from ../shared/models/tiny-llama-kjv (trained, BF16) and
 * tests/data/bpe-llama3, against the torch reference of scripts/make_llama3_reference.py
 * (tests/data/llama3-tiny/logits.f32: logits of the last 8 of 64 tokens and the perplexity):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF has llama.cpp's rope_freqs.weight (first tensor), no output.weight, pre llama-bpe;
 *  - smelt ppl on the HF directory equals smelt ppl on the GGUF; Q8_0 / Q4_K_M quantize runs;
 *  - with --llama-cpp: llama-quantize's Q8_0 and Q4_K_M files equal smelt's, llama-perplexity
 *    within 0.5% of smelt ppl. */
#include "testlib.h"
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T 64
#define V 2048
#define LAST 8
#define CALIB_TEXT "text/kjv-calib.txt"

static const char *make_llama32(void) {
    static char dir[1024];
    static bool made;
    if (made) return dir;
    snprintf(dir, sizeof dir, "%s", tl_tmp("llama32-tiny"));
    const char *src = getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..";
    const char *kjv = tl_asset("models/tiny-llama-kjv");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && cp '%s/config.json' '%s/tests/data/bpe-llama3/tokenizer.json' "
             "'%s/tests/data/bpe-llama3/tokenizer_config.json' '%s'/ && chmod u+w '%s'/* && sed -i "
             "'s/\"rope_scaling\": null/\"rope_scaling\": {\"factor\": 8.0, \"high_freq_factor\": 4.0, "
             "\"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 64, \"rope_type\": \"llama3\"}/;"
             "s/\"tie_word_embeddings\": false/\"tie_word_embeddings\": true/' '%s/config.json'",
             dir, dir, kjv, src, src, dir, dir, dir);
    if (system(cmd)) return NULL;
    sm_ckpt *c = NULL;
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", kjv);
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
    made = rc == 0;
    return made ? dir : NULL;
}

static void tokens(int32_t *toks) {
    toks[0] = 1;
    for (int i = 1; i < T; i++) toks[i] = (i * 37 + 11) % V;
}

static float *eval(const char *path) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return NULL;
    int32_t toks[T];
    tokens(toks);
    float *logits = malloc(sizeof(float) * T * V);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, T, 9, &c));
    if (!c || sm_model_eval(m, c, toks, T, 0, 0, logits)) {
        CHECK_MSG(0, "eval %s: %s", path, sm_last_error());
        free(logits);
        logits = NULL;
    }
    sm_context_free(c);
    sm_model_free(m);
    return logits;
}

static void against_torch(const char *what, const float *logits) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/llama3-tiny/logits.f32", getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..");
    size_t len = 0;
    float *ref = (float *)tl_slurp(p, &len);
    CHECK_MSG(ref && len == sizeof(float) * (LAST * V + 1), "%s: missing or wrong size", p);
    if (!ref || !logits || len != sizeof(float) * (LAST * V + 1)) {
        free(ref);
        return;
    }
    int32_t toks[T];
    tokens(toks);
    double nll = 0;
    for (int i = 0; i + 1 < T; i++) {
        const float *row = logits + (size_t)i * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
        nll += mx + log(s) - row[toks[i + 1]];
    }
    const double ppl = exp(nll / (T - 1)), pr = ref[LAST * V];
    double worst = 0, big = 1;
    for (int i = 0; i < LAST * V; i++) {
        worst = fmax(worst, fabs((double)logits[(T - LAST) * V + i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    fprintf(stderr, "  llama3 %s: max |logit - torch| = %.3g (largest %.3g), ppl %.6f vs torch %.6f\n", what, worst, big,
            ppl, pr);
    CHECK_MSG(worst <= 1e-4 * big, "%s: logits differ from torch by %g", what, worst);
    CHECK_MSG(fabs(ppl - pr) <= 1e-5 * pr, "%s: ppl %.9g vs torch %.9g", what, ppl, pr);
    free(ref);
}

static void logits_hf_and_gguf(void) {
    const char *dir = make_llama32();
    CHECK(dir != NULL);
    if (!dir) return;
    float *a = eval(dir);
    against_torch("HF", a);
    free(a);
    const char *gguf = tl_tmp("llama32.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(gguf, &g));
    if (g) {
        const sm_tensor *f = sm_gguf_tensor(g, 0);
        CHECK(f && !strcmp(f->name, "rope_freqs.weight") && f->n_dims == 1 && f->shape[0] == 16);
        /* the factors torch's _compute_llama3_parameters implies (printed by the script: 1, 1, 1.294,
         * 2.7652, 7.6674, then 8), bit for bit as convert_hf_to_gguf.py's float32 loop writes them for
         * this config (its output read back; smelt computed 2.7651734 with double arithmetic before) */
        if (f && f->shape[0] == 16) {
            const float *r = f->data;
            CHECK(r[0] == 1.0f && r[1] == 1.0f && r[2] == 0x1.4b42p+0f && r[3] == 0x1.61f132p+1f &&
                  r[4] == 0x1.eab67p+2f && r[5] == 8.0f && r[15] == 8.0f);
        }
        CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
        const char *s = sm_gguf_get_str(g, "tokenizer.ggml.pre");
        CHECK(s && !strcmp(s, "llama-bpe"));
        /* Llama 3's post_processor pair template (bos A bos B) makes gguf-py's SpecialVocab write
         * add_sep_token = false after add_bos_token = true (as convert_hf_to_gguf.py does for this
         * fixture and for Meta's tokenizer.json) */
        bool add_bos = false, add_sep = true;
        CHECK(sm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) == 0 && add_bos);
        CHECK(sm_gguf_get_bool(g, "tokenizer.ggml.add_sep_token", &add_sep) == 0 && !add_sep);
        static const char *const order[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_sep_token",
                                            "tokenizer.chat_template"};
        ta_check_key_order(g, order, NULL, 5, true);
        sm_gguf_close(g);
    }
    float *b = eval(gguf);
    against_torch("GGUF f32", b);
    free(b);
}

static void cli_ppl_quantize(void) {
    const char *dir = make_llama32();
    if (!dir) return;
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s", tl_tmp("llama32-cli.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    const double a = ta_smelt_ppl(dir), b = ta_smelt_ppl(gguf);
    fprintf(stderr, "  smelt ppl (ctx 64, llama-bpe tokens): HF %.6f, GGUF %.6f\n", a, b);
    CHECK(a > 1 && fabs(a - b) <= 1e-5 * a);
    static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
    for (int r = 0; r < 2; r++) {
        char q[1100];
        snprintf(q, sizeof q, "%s-%s.gguf", gguf, RECIPES[r]);
        sm_quantize_opts qo = {.recipe = RECIPES[r], .quiet = true};
        sm_quantize_report qr;
        CHECK_OK(sm_quantize_gguf(gguf, q, &qo, &qr));
        const double pq = ta_smelt_ppl(q);
        fprintf(stderr, "  %s ppl %.4f\n", RECIPES[r], pq);
        CHECK(pq > 1 && fabs(pq - a) < 0.2 * a);
    }
}

static void llama_cpp(void) {
    const char *bin = tl_llama_cpp_bin("llama-quantize / llama-perplexity on the Llama 3.2-style GGUF");
    const char *dir = make_llama32();
    if (!bin || !dir) return;
    char src[1024], args[4096];
    snprintf(src, sizeof src, "%s", tl_tmp("llama32-lc.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, src, &co, NULL));
    static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
    for (int r = 0; r < 2; r++) {
        snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' %s 2 > '%s' 2>&1", bin, src, tl_tmp("lq.gguf"), RECIPES[r],
                 tl_tmp("lq.log"));
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", src, tl_tmp("sq.gguf"), RECIPES[r]);
        CHECK(tl_run_smelt(args, NULL) == 0);
        CHECK_MSG(tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf")), "%s: smelt quantize's file differs from "
                  "llama-quantize's", RECIPES[r]);
    }
    const double lp = tl_llama_ppl(bin, src, tl_asset(CALIB_TEXT), 64, 4);
    const double sp = ta_smelt_ppl(src);
    fprintf(stderr, "  ppl: smelt %.4f, llama-perplexity %.4f (%+.3f%%)\n", sp, lp, 100 * (sp - lp) / lp);
    CHECK(sp > 1 && lp > 1 && fabs(sp - lp) <= 0.005 * lp);
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl_quantize);
    TEST(llama_cpp);
}

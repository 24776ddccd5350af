/* test_arch_gemma2.c - Gemma 2 end to end through the architecture table: a tiny
 * Gemma2ForCausalLM (tests/testlib.c tl_make_gemma2_tiny; GELU-tanh gated FFN, (1 + w) RMSNorms,
 * embedding scaled by sqrt(hidden), pre- and post-norms around attention and the FFN, attention-
 * and final-logit soft-capping, query_pre_attn_scalar, sliding-window layers with a window (8)
 * shorter than the 24 reference tokens, tied output, an SPM tokenizer) against the torch reference
 * of scripts/make_gemma2_reference.py (tests/data/gemma2-tiny/: logits of 24 tokens over the
 * whole 2048-token vocabulary, written from transformers' modeling_gemma2.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF carries what llama.cpp's Gemma2Model writes: architecture gemma2, its keys
 *    (key/value_length, attn_logit_softcapping, final_logit_softcapping, attention.sliding_window;
 *    no rope keys), norms + 1 kept F32, post_attention_norm / post_ffw_norm, no output.weight;
 *  - smelt quantize (Q8_0, Q4_K_M) tracks the F32 model; smelt imatrix and smelt gptq run through
 *    the block; the CUDA path refuses the block (its features are CPU-only for now);
 *  - a Gemma 2 checkpoint without a post norm is refused, naming the tensor. */
#include "testlib.h"

#include "convert/convert.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T 24
#define V GM2_VOCAB
#define CALIB_TEXT "text/kjv-calib.txt"

static void tokens(int32_t *toks) {
    toks[0] = 1;
    for (int i = 1; i < T; i++) toks[i] = (i * 37 + 11) % V;
}

static double ppl_of(const float *logits, const int32_t *toks) {
    double nll = 0;
    for (int i = 0; i + 1 < T; i++) {
        const float *row = logits + (size_t)i * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
        nll += mx + log(s) - row[toks[i + 1]];
    }
    return exp(nll / (T - 1));
}

static float *eval(const char *path) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return NULL;
    int32_t toks[T];
    tokens(toks);
    float *logits = malloc(sizeof(float) * T * V);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 64, 7, &c)); /* batches of 7: the cache (and the window) across batches */
    if (c && sm_model_eval(m, c, toks, T, 0, 0, logits)) {
        CHECK_MSG(0, "eval %s: %s", path, sm_last_error());
        free(logits);
        logits = NULL;
    }
    CHECK(sm_model_rope(m) == SM_ROPE_NEOX);
    sm_context_free(c);
    sm_model_free(m);
    return logits;
}

static float *reference(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/gemma2-tiny/logits_24x%d.f32",
             getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..", V);
    size_t len = 0;
    float *ref = (float *)tl_slurp(p, &len);
    CHECK_MSG(ref && len == sizeof(float) * T * V, "%s: missing or wrong size", p);
    if (ref && len != sizeof(float) * T * V) {
        free(ref);
        ref = NULL;
    }
    return ref;
}

/* logits within 1e-4 of torch's (relative to the largest logit when above 1), ppl within 1e-5 */
static void against_torch(const char *what, const float *logits, const float *ref) {
    if (!logits || !ref) return;
    int32_t toks[T];
    tokens(toks);
    double worst = 0, big = 1;
    for (int i = 0; i < T * V; i++) {
        worst = fmax(worst, fabs((double)logits[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    const double p = ppl_of(logits, toks), pr = ppl_of(ref, toks);
    fprintf(stderr, "  gemma2 %s: max |logit - torch| = %.3g (largest %.3g), ppl %.6f vs torch %.6f\n", what, worst,
            big, p, pr);
    CHECK_MSG(worst <= 1e-4 * big, "%s: logits differ from torch by %g", what, worst);
    CHECK_MSG(fabs(p - pr) <= 1e-5 * pr, "%s: ppl %.9g vs torch %.9g", what, p, pr);
}

static void check_u32(const sm_gguf *g, const char *key, uint64_t want) {
    uint64_t v = 0;
    CHECK_MSG(sm_gguf_get_u64(g, key, &v) == 0 && v == want, "%s: %llu, expected %llu", key, (unsigned long long)v,
              (unsigned long long)want);
}

static void check_f32(const sm_gguf *g, const char *key, double want) {
    double v = 0;
    const sm_gguf_value *kv = sm_gguf_find(g, key);
    CHECK_MSG(kv && kv->type == SM_GGUF_FLOAT32 && sm_gguf_get_f64(g, key, &v) == 0 && v == want,
              "%s: %g, expected f32 %g", key, v, want);
}

static void check_gguf(const char *path, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "gemma2"));
    check_u32(g, "gemma2.context_length", 256);
    check_u32(g, "gemma2.embedding_length", QW_HIDDEN);
    check_u32(g, "gemma2.block_count", QW_LAYERS);
    check_u32(g, "gemma2.feed_forward_length", QW_FF);
    check_u32(g, "gemma2.attention.head_count", QW_HEADS);
    check_u32(g, "gemma2.attention.head_count_kv", QW_KV);
    check_u32(g, "gemma2.attention.key_length", GM2_HD);
    check_u32(g, "gemma2.attention.value_length", GM2_HD);
    check_u32(g, "gemma2.attention.sliding_window", GM2_WINDOW);
    check_f32(g, "gemma2.attn_logit_softcapping", 2.0);
    check_f32(g, "gemma2.final_logit_softcapping", 3.0);
    check_f32(g, "gemma2.attention.layer_norm_rms_epsilon", (double)1e-6f);
    /* Gemma2Model.set_gguf_parameters writes no rope keys and no vocab_size */
    CHECK(sm_gguf_find(g, "gemma2.rope.freq_base") == NULL && sm_gguf_find(g, "gemma2.vocab_size") == NULL &&
          sm_gguf_find(g, "gemma2.rope.dimension_count") == NULL);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "llama"));
    /* Gemma2Model.set_vocab: add_add_space_prefix(False) */
    const sm_gguf_value *asp = sm_gguf_find(g, "tokenizer.ggml.add_space_prefix");
    CHECK(asp && asp->type == SM_GGUF_BOOL && asp->v.u == 0);
    CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(2 + QW_LAYERS * 11));
    static const char *const NORMS[] = {"attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"};
    for (int l = 0; l < QW_LAYERS; l++)
        for (int k = 0; k < 4; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, NORMS[k]);
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == QW_HIDDEN, "%s", n);
        }
    /* the norms carry + 1: the fixture's values are v / 1024 with |v| <= 127 */
    const sm_tensor *on = sm_gguf_find_tensor(g, "output_norm.weight");
    if (on && on->type == SM_TYPE_F32) {
        const float *w = on->data;
        bool shifted = true;
        for (int i = 0; i < QW_HIDDEN; i++) shifted &= w[i] >= 1.0f - 128.0f / 1024 && w[i] <= 1.0f + 128.0f / 1024;
        CHECK_MSG(shifted, "output_norm.weight is not 1 + w");
    }
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.1.attn_q.weight");
    CHECK(q && q->shape[0] == QW_HEADS * GM2_HD && q->shape[1] == QW_HIDDEN && (!f32 || q->type == SM_TYPE_F32));
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) {
        fprintf(stderr, "  (the tiny-llama-kjv tokenizer asset is missing)\n");
        exit(77);
    }
    float *ref = reference();
    if (!ref) return;
    float *a = eval(dir);
    against_torch("HF", a, ref);
    const char *gguf = tl_tmp("gemma2.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    check_gguf(gguf, true);
    float *b = eval(gguf);
    against_torch("GGUF f32", b, ref);
    /* the same GGUF through sm_hparams: what llama.cpp's loader derives from the keys */
    sm_gguf *g = NULL;
    sm_hparams hp;
    CHECK_OK(sm_gguf_open(gguf, &g));
    if (g) {
        CHECK_OK(sm_hparams_from_gguf(g, &hp));
        CHECK(hp.attn_softcap == 2.0f && hp.final_softcap == 3.0f && hp.sliding_window == GM2_WINDOW &&
              hp.swa_pattern == 2 && fabsf(hp.attn_scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
        sm_gguf_close(g);
    }
    free(a);
    free(b);
    free(ref);
}

/* smelt ppl on the HF directory and on its GGUF: the same numbers */
static void cli_ppl(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) return;
    const char *gguf = tl_tmp("gemma2-cli.gguf");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "convert %s -o %s --outtype f32 --quiet", dir, gguf);
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    double ppl[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "ppl %s --text %s --ctx 64 --chunks 4 --json", i ? gguf : dir, tl_asset(CALIB_TEXT));
        out = NULL;
        const int rc = tl_run_smelt(cmd, &out);
        CHECK_MSG(rc == 0, "%s: %s", cmd, out ? out : "");
        const char *p = out ? strstr(out, "\"ppl\":") : NULL;
        if (p) ppl[i] = strtod(p + 6, NULL);
        free(out);
    }
    fprintf(stderr, "  smelt ppl: HF %.6f, GGUF %.6f\n", ppl[0], ppl[1]);
    CHECK(ppl[0] > 1 && fabs(ppl[0] - ppl[1]) <= 1e-6 * ppl[0]);
}

static void quantize(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) return;
    const char *f32 = tl_tmp("gemma2-q-src.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, f32, &co, NULL));
    float *base = eval(f32);
    static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
    for (size_t r = 0; r < 2 && base; r++) {
        char name[64];
        snprintf(name, sizeof name, "gemma2-%s.gguf", RECIPES[r]);
        const char *q = tl_tmp(name);
        sm_quantize_opts qo = {.recipe = RECIPES[r], .quiet = true};
        sm_quantize_report qr;
        CHECK_OK(sm_quantize_gguf(f32, q, &qo, &qr));
        check_gguf(q, false);
        float *l = eval(q);
        double worst = 0, big = 0;
        for (int i = 0; l && i < T * V; i++) {
            worst = fmax(worst, fabs((double)l[i] - base[i]));
            big = fmax(big, fabs(base[i]));
        }
        fprintf(stderr, "  gemma2 %s: max |logit - f32| = %.3g of %.3g\n", RECIPES[r], worst, big);
        CHECK(l && worst < (r == 0 ? 0.02 : 0.25) * big);
        free(l);
    }
    free(base);
}

static void calibration(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) return;
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s -o %s --ctx 64 --chunks 4", dir, tl_asset(CALIB_TEXT),
             tl_tmp("gemma2.imatrix"));
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "quantize %s/../gemma2-q-src.gguf %s Q4_K_M --imatrix %s", dir,
             tl_tmp("gemma2-imat.gguf"), tl_tmp("gemma2.imatrix"));
    out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 --to gguf:Q4_0 -o %s", dir,
             tl_asset(CALIB_TEXT), tl_tmp("gemma2-gptq.gguf"));
    out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    check_gguf(tl_tmp("gemma2-gptq.gguf"), false);
    free(eval(tl_tmp("gemma2-gptq.gguf")));
    /* the GPU block does not implement Gemma 2's operations yet: refused, never run without them */
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(dir, NULL, &m));
    if (m) {
        sm_context *c = NULL;
        const int rc = sm_context_new_on(m, SM_DEVICE_CUDA, 64, 0, &c);
        CHECK(rc != 0 && c == NULL);
        sm_context_free(c);
        sm_model_free(m);
    }
}

/* A copy of the fixture without post_feedforward_layernorm of layer 1: refused, naming it */
static void missing_post_norm(void) {
    const char *dir = tl_make_gemma2_tiny();
    if (!dir) return;
    const char *bad = tl_tmp("gemma2-no-postnorm");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s'/*.json '%s'/tokenizer.model '%s'/", bad, bad, dir,
             dir, bad);
    CHECK(system(cmd) == 0);
    sm_ckpt *c = NULL;
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    CHECK_OK(sm_ckpt_open(st, &c));
    if (!c) return;
    const char *drop = "model.layers.1.post_feedforward_layernorm.weight";
    sm_st_writer *w = sm_st_writer_new();
    for (size_t i = 0; i < c->n_tensors; i++)
        if (strcmp(c->tensors[i].name, drop))
            sm_st_writer_add(w, c->tensors[i].name, c->tensors[i].type, c->tensors[i].n_dims, c->tensors[i].shape);
    snprintf(st, sizeof st, "%s/model.safetensors", bad);
    int rc = sm_st_writer_begin(w, st);
    for (size_t i = 0; i < c->n_tensors && rc == 0; i++)
        if (strcmp(c->tensors[i].name, drop)) rc = sm_st_writer_write(w, c->tensors[i].data, c->tensors[i].nbytes);
    CHECK(rc == 0 && sm_st_writer_finish(w) == 0);
    sm_ckpt_close(c);
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_FAILS_WITH(sm_convert(bad, tl_tmp("bad.gguf"), &co, NULL), drop);
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), "blk.1.post_ffw_norm.weight is missing");
}

/* With --llama-cpp: llama-quantize writes the same bytes for every recipe, and llama-perplexity
 * on the converted GGUF gives smelt ppl's number within 0.5% */
static void llama_cpp(void) {
    const char *dir = tl_make_gemma2_tiny();
    const char *bin = tl_llama_cpp_bin("llama-quantize / llama-perplexity on the Gemma 2 GGUF");
    if (!dir || !bin) return;
    char src[1024]; /* tl_tmp's buffers are reused */
    snprintf(src, sizeof src, "%s", tl_tmp("gemma2-lc.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, src, &co, NULL));
    static const char *const recipes[] = {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                          "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_NL", "IQ4_XS"};
    char args[4096];
    int same = 0;
    for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++) {
        snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' %s 2 > '%s' 2>&1", bin, src, tl_tmp("lq.gguf"),
                 recipes[i], tl_tmp("lq.log"));
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", src, tl_tmp("sq.gguf"), recipes[i]);
        CHECK(tl_run_smelt(args, NULL) == 0);
        const bool eq = tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
        CHECK_MSG(eq, "%s: smelt quantize's file differs from llama-quantize's", recipes[i]);
        same += eq;
    }
    fprintf(stderr, "  %d of 16 recipes byte-identical to llama-quantize\n", same);
    snprintf(args, sizeof args, "%s/llama-perplexity -m '%s' -f '%s' -c 64 --chunks 4 -t 2 > '%s' 2>&1", bin, src,
             tl_asset(CALIB_TEXT), tl_tmp("lp.log"));
    CHECK(system(args) == 0);
    size_t len = 0;
    char *log = tl_slurp(tl_tmp("lp.log"), &len);
    const char *p = log ? strstr(log, "[4]") : NULL;
    const double lp = p ? strtod(p + 3, NULL) : 0;
    free(log);
    char *out = NULL;
    snprintf(args, sizeof args, "ppl %s --text %s --ctx 64 --chunks 4 --json", src, tl_asset(CALIB_TEXT));
    CHECK(tl_run_smelt(args, &out) == 0);
    p = out ? strstr(out, "\"ppl\":") : NULL;
    const double sp = p ? strtod(p + 6, NULL) : 0;
    free(out);
    fprintf(stderr, "  ppl: smelt %.4f, llama-perplexity %.4f\n", sp, lp);
    CHECK(sp > 1 && lp > 1 && fabs(sp - lp) <= 0.005 * lp);
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(missing_post_norm);
    TEST(llama_cpp);
}

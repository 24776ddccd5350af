/* test_runtime.c - the forward pass and perplexity against the torch references in
 * ../shared (tiny-llama-kjv: logits of the first 64 tokens, llama.cpp-protocol perplexity),
 * stories260K greedy decoding against Karpathy's published sample, thread-count and
 * batch-size invariance, and the KL-divergence machinery. */
#include "testlib.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "kernels/kernels.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define KJV "models/tiny-llama-kjv"

static int32_t *g_tokens;
static int64_t g_n_tokens;

/* reference/tokens_eval.txt: one id per line, BOS first */
static void load_tokens(void) {
    if (g_tokens) return;
    size_t len;
    char *txt = tl_slurp(tl_asset(KJV "/reference/tokens_eval.txt"), &len);
    if (!txt) return;
    g_tokens = malloc(sizeof(int32_t) * (len / 2 + 1));
    char *p = txt, *end;
    for (long v; (v = strtol(p, &end, 10)), end != p; p = end) g_tokens[g_n_tokens++] = (int32_t)v;
    free(txt);
}

/* Largest |logits - reference| over the first 64 tokens, evaluated in batches of n_batch. */
static double first64_diff(const sm_model *m, int64_t n_batch, float *logits) {
    sm_context *c = NULL;
    if (sm_context_new(m, 256, n_batch, &c)) return INFINITY;
    int rc = sm_model_eval(m, c, g_tokens, 64, 0, 0, logits);
    sm_context_free(c);
    if (rc) {
        fprintf(stderr, "eval: %s\n", sm_last_error());
        return INFINITY;
    }
    size_t len;
    float *ref = (float *)tl_slurp(tl_asset(KJV "/reference/logits_first64.f32"), &len);
    if (!ref || len != 64 * 2048 * sizeof(float)) {
        free(ref);
        return INFINITY;
    }
    double worst = 0;
    for (size_t i = 0; i < 64 * 2048; i++) {
        double d = fabs((double)logits[i] - ref[i]);
        if (!(d <= worst)) worst = d;
    }
    free(ref);
    return worst;
}

static void check_first64_path(const char *path, const char *rel) {
    load_tokens();
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return;
    CHECK(sm_model_hparams(m)->n_vocab == 2048);
    float *logits = malloc(sizeof(float) * 64 * 2048);
    double d = first64_diff(m, 64, logits);
    fprintf(stderr, "  %s: logits of the first 64 tokens, max |diff| = %.3g\n", rel, d);
    CHECK_MSG(d <= 1e-3, "%s: max abs logit difference %g", rel, d);
    free(logits);
    sm_model_free(m);
}

static void check_first64(const char *rel) { check_first64_path(tl_asset(rel), rel); }

static void hf_bf16_logits(void) { check_first64(KJV); }
static void hf_f32_logits(void) { check_first64(KJV "/f32"); }
static void hf_sharded_logits(void) { check_first64(KJV "/sharded"); }
static void hf_pytorch_logits(void) { check_first64(KJV "/pytorch"); }

/* 1 vs 2 threads, one batch vs batches of 16: the same bits. */
static void invariance(void) {
    load_tokens();
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_asset(KJV), NULL, &m));
    if (!m) return;
    float *a = malloc(sizeof(float) * 64 * 2048), *b = malloc(sizeof(float) * 64 * 2048);
    omp_set_num_threads(1);
    first64_diff(m, 64, a);
    omp_set_num_threads(2);
    first64_diff(m, 64, b);
    CHECK_MSG(!memcmp(a, b, sizeof(float) * 64 * 2048), "logits differ between 1 and 2 threads");
    first64_diff(m, 16, b);
    CHECK_MSG(!memcmp(a, b, sizeof(float) * 64 * 2048), "logits differ between batches of 64 and of 16");
    /* asking for the logits of the last tokens only (the last layer then skips the others)
     * gives the same bits */
    sm_context *c2 = NULL;
    CHECK_OK(sm_context_new(m, 256, 64, &c2));
    if (c2) {
        CHECK_OK(sm_model_eval(m, c2, g_tokens, 64, 0, 40, b));
        CHECK_MSG(!memcmp(a + 40 * 2048, b, sizeof(float) * 24 * 2048), "logits of the last 24 tokens differ");
        sm_context_free(c2);
    }
    /* incremental evaluation (cache reuse) agrees with one pass */
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 256, 64, &c));
    if (c) {
        CHECK_OK(sm_model_eval(m, c, g_tokens, 40, 0, 40, NULL));
        CHECK_OK(sm_model_eval(m, c, g_tokens + 40, 24, 40, 0, b));
        double worst = 0;
        for (size_t i = 0; i < 24 * 2048; i++) worst = fmax(worst, fabs(a[40 * 2048 + i] - b[i]));
        CHECK_MSG(worst < 1e-4, "incremental evaluation differs by %g", worst);
        /* out of range */
        int32_t bad = 5000;
        CHECK_FAILS_WITH(sm_model_eval(m, c, &bad, 1, 64, 0, b), "outside the vocabulary");
        CHECK_FAILS_WITH(sm_model_eval(m, c, g_tokens, 8, 100, 0, b), "position");
        sm_context_free(c);
    }
    free(a);
    free(b);
    sm_model_free(m);
}

/* ppl with n_ctx 256 against reference/perplexity.json. A sanitizer build compares the first
 * chunks' scores only (the full run takes minutes there). */
static void perplexity(void) {
    load_tokens();
    CHECK(g_n_tokens == 43786);
    size_t len;
    char *js = tl_slurp(tl_asset(KJV "/reference/perplexity.json"), &len);
    cJSON *ref = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK(ref != NULL);
    if (!ref) return;
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_asset(KJV), NULL, &m));
    if (!m) {
        cJSON_Delete(ref);
        return;
    }
    sm_ppl_opts o = {.n_ctx = 256, .bos_id = 1, .quiet = true};
#if defined(__SANITIZE_ADDRESS__)
    o.n_chunks = 6;
#endif
    sm_ppl_result r;
    CHECK_OK(sm_perplexity(m, g_tokens, g_n_tokens, &o, &r));
    const cJSON *per = cJSON_GetObjectItem(ref, "per_chunk_mean_nll");
    double worst = 0, sum = 0;
    for (int64_t c = 0; c < r.n_chunks; c++) {
        double want = cJSON_GetArrayItem(per, (int)c)->valuedouble;
        worst = fmax(worst, fabs(r.chunk_nll[c] - want));
        sum += want;
    }
    const double want_ppl = r.n_chunks == 171 ? cJSON_GetObjectItem(ref, "ppl")->valuedouble : exp(sum / (double)r.n_chunks);
    fprintf(stderr, "  ppl %.6f (reference %.6f, %lld chunks, rel diff %.2g), worst chunk NLL diff %.2g, %.0f tokens/s\n",
            r.ppl, want_ppl, (long long)r.n_chunks, fabs(r.ppl / want_ppl - 1), worst, r.tokens_per_second);
    CHECK(r.n_ctx == 256 && r.n_scored == r.n_chunks * 127);
    CHECK_MSG(fabs(r.ppl / want_ppl - 1) < 1e-3, "ppl %f vs reference %f", r.ppl, want_ppl);
    CHECK_MSG(worst < 1e-3, "chunk NLL differs by %g", worst);
    CHECK(r.ppl_stderr > 0 && r.ppl_stderr < 0.1 * r.ppl);
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(r.n_chunks == 171 && r.n_scored == 21717);
#endif
    sm_ppl_result_free(&r);
    /* too little text */
    CHECK_FAILS_WITH(sm_perplexity(m, g_tokens, 300, &o, &r), "at least 512 tokens");
    cJSON_Delete(ref);
    sm_model_free(m);
}

/* Chunk scores of the first n chunks against reference/perplexity.json. */
static void check_chunks(const sm_model *m, int64_t n_chunks, double tol) {
    size_t len;
    char *js = tl_slurp(tl_asset(KJV "/reference/perplexity.json"), &len);
    cJSON *ref = js ? cJSON_Parse(js) : NULL;
    free(js);
    const cJSON *per = ref ? cJSON_GetObjectItem(ref, "per_chunk_mean_nll") : NULL;
    sm_ppl_opts o = {.n_ctx = 256, .n_chunks = n_chunks, .bos_id = 1, .quiet = true};
    sm_ppl_result r;
    CHECK_OK(sm_perplexity(m, g_tokens, g_n_tokens, &o, &r));
    double worst = 0, sum = 0;
    for (int64_t c = 0; per && c < r.n_chunks; c++) {
        const double want = cJSON_GetArrayItem(per, (int)c)->valuedouble;
        worst = fmax(worst, fabs(r.chunk_nll[c] - want));
        sum += want;
    }
    const double want_ppl = exp(sum / (double)n_chunks);
    fprintf(stderr, "  ppl of %lld chunks %.6f (reference %.6f), worst chunk NLL diff %.2g\n", (long long)n_chunks, r.ppl,
            want_ppl, worst);
    CHECK(ref && r.n_chunks == n_chunks);
    CHECK_MSG(fabs(r.ppl / want_ppl - 1) < tol, "ppl %f vs reference %f", r.ppl, want_ppl);
    sm_ppl_result_free(&r);
    cJSON_Delete(ref);
}

/* The F32 GGUF that smelt convert makes (q/k permuted to ggml's rope order, which the runtime
 * then rotates in adjacent pairs): the same logits and chunk scores as the torch reference.
 * Its Q8_0 quantization: close to it in KL divergence. */
static void gguf_f32_and_q8(void) {
    load_tokens();
    const char *f32 = tl_tmp("kjv-f32.gguf"), *q8 = tl_tmp("kjv-q8_0.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(tl_asset(KJV), f32, &co, NULL));
    check_first64_path(f32, "kjv-f32.gguf");
    sm_model *m = NULL, *q = NULL;
    CHECK_OK(sm_model_load(f32, NULL, &m));
    if (!m) return;
    CHECK(sm_model_rope(m) == SM_ROPE_NORM);
#if defined(__SANITIZE_ADDRESS__)
    check_chunks(m, 3, 1e-3);
#else
    check_chunks(m, 20, 1e-3);
#endif
    sm_quantize_opts qo = {.recipe = "Q8_0", .quiet = true};
    sm_quantize_report qr;
    CHECK_OK(sm_quantize_gguf(f32, q8, &qo, &qr));
    CHECK_OK(sm_model_load(q8, NULL, &q));
    if (q) {
        sm_ppl_opts o = {.n_ctx = 256, .n_chunks = 3, .bos_id = 1, .quiet = true};
        sm_ppl_result r;
        CHECK_OK(sm_kl_divergence_models(q, m, g_tokens, g_n_tokens, &o, &r));
        fprintf(stderr, "  Q8_0 vs F32: ppl %.4f vs %.4f, KLD %.2g (p99 %.2g), same top %.4f\n", r.ppl, r.ppl_base,
                r.kld_mean, r.kld.p99, r.top1_agreement);
        CHECK(r.kld_mean > 0 && r.kld_mean < 1e-3 && r.top1_agreement > 0.97 && fabs(r.ppl / r.ppl_base - 1) < 5e-3);
        sm_ppl_result_free(&r);
    }
    sm_model_free(q);
    sm_model_free(m);
}

/* ---- a tiny Qwen2 (q/k/v biases, rotate_half rope with theta 1e6, tied output) against
 * torch: weights from the integer recipe of scripts/make_qwen2_reference.py, reference
 * logits (24 positions x the first 128 ids) in tests/data/qwen2-tiny/ ---- */
static void check_qwen2_logits(const char *path, sm_rope_kind want_rope) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return;
    CHECK(sm_model_rope(m) == want_rope);
    int32_t toks[24] = {1};
    for (int i = 1; i < 24; i++) toks[i] = (i * 37 + 11) % QW_VOCAB;
    float *logits = malloc(sizeof(float) * 24 * QW_VOCAB);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 64, 24, &c));
    if (c) CHECK_OK(sm_model_eval(m, c, toks, 24, 0, 0, logits));
    size_t len = 0;
    char ref_path[1024];
    snprintf(ref_path, sizeof ref_path, "%s/tests/data/qwen2-tiny/logits_24x128.f32",
             getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..");
    float *ref = (float *)tl_slurp(ref_path, &len);
    CHECK(ref && len == 24 * 128 * sizeof(float));
    double worst = 0;
    for (int i = 0; ref && c && i < 24; i++)
        for (int v = 0; v < 128; v++) worst = fmax(worst, fabs(logits[i * QW_VOCAB + v] - ref[i * 128 + v]));
    fprintf(stderr, "  qwen2 %s: max |logit - torch| = %.3g\n", path, worst);
    CHECK_MSG(ref && worst < 1e-4, "qwen2 logits differ from torch by %g", worst);
    free(ref);
    free(logits);
    sm_context_free(c);
    sm_model_free(m);
}

/* HF directory (rotate_half rope on unpermuted weights) and its GGUF (llama.cpp's qwen2 uses
 * NEOX rope; the converter leaves q/k alone) both agree with torch. */
static void qwen2_tiny(void) {
    const char *dir = tl_make_qwen2_tiny();
    CHECK(dir != NULL);
    if (!dir) return;
    check_qwen2_logits(dir, SM_ROPE_NEOX);
    const char *gguf = tl_tmp("qwen2.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    check_qwen2_logits(gguf, SM_ROPE_NEOX);
}

/* Saved log-probabilities of a model against itself: KLD ~ 0, same argmax everywhere. */
static void kl_divergence(void) {
    load_tokens();
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_asset(KJV), NULL, &m));
    if (!m) return;
    const char *path = tl_tmp("base.logits");
    sm_ppl_opts o = {.n_ctx = 128, .n_chunks = 3, .bos_id = 1, .quiet = true, .save_logits = path};
    sm_ppl_result base, r;
    CHECK_OK(sm_perplexity(m, g_tokens, g_n_tokens, &o, &base));
    size_t len = 0;
    free(tl_slurp(path, &len));
    CHECK(len == 20 + 4 * 3 * 128 + (size_t)3 * 63 * (2048 + 4) * 2);
    o.save_logits = NULL;
    CHECK_OK(sm_kl_divergence(m, path, &o, &r));
    CHECK(r.has_kld && r.n_chunks == 3 && r.n_scored == 3 * 63);
    CHECK_NEAR(r.ppl, base.ppl, 1e-4 * base.ppl);
    CHECK_NEAR(r.ppl_base, base.ppl, 1e-3 * base.ppl); /* 16-bit log-probabilities */
    fprintf(stderr, "  self KLD: mean %.3g max %.3g, ppl %.6f base %.6f, rms dp %.3g\n", r.kld_mean, r.kld.max, r.ppl, r.ppl_base, r.rms_dp);
    CHECK(fabs(r.kld_mean) < 1e-5 && r.kld.max < 1e-4); /* 16-bit log-probabilities: ~0, either sign */
    CHECK(r.top1_agreement == 1.0);
    CHECK(fabs(r.delta_ppl) < 1e-3 * base.ppl && r.rms_dp < 1e-3);
    sm_ppl_result_free(&r);
    sm_ppl_result_free(&base);

    /* a truncated or corrupted file is refused with the offset */
    char *bytes = tl_slurp(path, &len);
    const char *bad = tl_tmp("bad.logits");
    tl_write_file(bad, bytes, len - 1);
    CHECK_FAILS_WITH(sm_kl_divergence(m, bad, &o, &r), "expected");
    bytes[20] = (char)0xff; /* token id -1 */
    bytes[21] = bytes[22] = bytes[23] = (char)0xff;
    tl_write_file(bad, bytes, len);
    CHECK_FAILS_WITH(sm_kl_divergence(m, bad, &o, &r), "offset 20");
    memcpy(bytes, "_logitz_", 8);
    tl_write_file(bad, bytes, len);
    CHECK_FAILS_WITH(sm_kl_divergence(m, bad, &o, &r), "offset 0");
    free(bytes);
    sm_model_free(m);
}

/* stories260K (llama2.c checkpoint + tok512.model): greedy decoding from BOS for 256 steps
 * gives Karpathy's published sample byte for byte (stories260k/SOURCE.md). */
static void stories_greedy(void) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_asset("models/stories260k/stories260K.bin"), tl_asset("models/stories260k/tok512.model"), &m));
    if (!m) return;
    const sm_tokenizer *tok = NULL;
    CHECK_OK(sm_model_tokenizer(m, &tok));
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 512, 1, &c));
    if (!c || !tok) {
        sm_model_free(m);
        return;
    }
    float logits[512];
    int32_t ids[257] = {1};
    for (int pos = 0; pos < 256; pos++) {
        CHECK_OK(sm_model_eval(m, c, &ids[pos], 1, pos, 0, logits));
        int best = 0;
        for (int v = 1; v < 512; v++)
            if (logits[v] > logits[best]) best = v;
        ids[pos + 1] = best;
    }
    const int32_t first[15] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    CHECK(!memcmp(ids + 1, first, sizeof first));
    char *text = NULL;
    size_t len = 0, want_len = 0;
    CHECK_OK(sm_detokenize(tok, ids, 257, &text, &len));
    char *want = tl_slurp(tl_asset("models/stories260k/expected_greedy_t0_256steps.txt"), &want_len);
    CHECK_MSG(text && want && len == want_len && !memcmp(text, want, len), "greedy text differs:\n%.*s", (int)len,
              text ? text : "");
    free(text);
    free(want);
    sm_context_free(c);
    sm_model_free(m);
}

/* the tokenizer path of `ppl --text`: kjv-eval.txt gives reference/tokens_eval.txt */
static void text_tokens(void) {
    load_tokens();
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_asset(KJV), NULL, &m));
    if (!m) return;
    const sm_tokenizer *tok = NULL;
    CHECK_OK(sm_model_tokenizer(m, &tok));
    int32_t bos = -2;
    if (tok) CHECK_OK(sm_ppl_chunk_bos(tok, &bos));
    CHECK(bos == 1);
    size_t len, n = 0;
    char *txt = tl_slurp(tl_asset("text/kjv-eval.txt"), &len);
    int32_t *ids = NULL;
    if (tok && txt) CHECK_OK(sm_tokenize(tok, txt, len, SM_TOK_ADD_SPECIAL, &ids, &n));
    CHECK(n == (size_t)g_n_tokens && ids && !memcmp(ids, g_tokens, n * sizeof(int32_t)));
    free(ids);
    free(txt);
    sm_model_free(m);
}

static void load_errors(void) {
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load("/nonexistent/model", NULL, &m), "/nonexistent/model");
    CHECK(m == NULL);
}

void run_tests(void) {
    TEST(hf_bf16_logits);
    TEST(hf_f32_logits);
    TEST(hf_sharded_logits);
    TEST(hf_pytorch_logits);
    TEST(invariance);
    TEST(gguf_f32_and_q8);
    TEST(qwen2_tiny);
    TEST(perplexity);
    TEST(kl_divergence);
    TEST(stories_greedy);
    TEST(text_tokens);
    TEST(load_errors);
    free(g_tokens);
}

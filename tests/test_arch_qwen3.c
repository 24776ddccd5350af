/* test_arch_qwen3.c - Qwen3 end to end through the architecture table: a tiny Qwen3ForCausalLM
 * (tests/testlib.c tl_make_qwen3_tiny; per-head q/k RMSNorm, no biases, head_dim 32 given
 * explicitly, the Qwen2-style BPE tokenizer, tied and untied lm_head) against the torch
 * reference of scripts/make_qwen3_reference.py (tests/data/qwen3-tiny/: logits of 24 tokens
 * over the whole 679-token vocabulary, written from transformers' modeling_qwen3.py):
 *  - logits and perplexity of the HF directory and of its F32 GGUF equal torch's;
 *  - the GGUF is what llama.cpp's Qwen3Model writes: architecture qwen3, key/value_length,
 *    attn_q_norm / attn_k_norm [head_dim] kept F32, output.weight only when untied, the
 *    tokenizer (pre "qwen2") and the chat template carried;
 *  - smelt quantize (Q8_0, Q4_K_M) keeps the q/k norms F32 and the quantized model tracks the
 *    F32 one; smelt imatrix and smelt gptq (GGUF and HF GPTQ targets) run through the block;
 *  - the converter refuses a Qwen3 checkpoint without its q/k norms, naming the tensor;
 *  - smelt help convert lists every architecture of the table. */
#include "testlib.h"

#include "convert/convert.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T 24
#define CALIB_TEXT "text/kjv-calib.txt"

static void tokens(int32_t *toks) {
    toks[0] = 1;
    for (int i = 1; i < T; i++) toks[i] = (i * 37 + 11) % QW3_VOCAB;
}

/* Perplexity of tokens[1..T) from logits of tokens [0, T-1), in double. */
static double ppl_of(const float *logits, const int32_t *toks) {
    double nll = 0;
    for (int i = 0; i + 1 < T; i++) {
        const float *row = logits + (size_t)i * QW3_VOCAB;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < QW3_VOCAB; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < QW3_VOCAB; v++) s += exp((double)row[v] - mx);
        nll += mx + log(s) - row[toks[i + 1]];
    }
    return exp(nll / (T - 1));
}

/* The model's logits for the 24 tokens (malloc'ed), or NULL. */
static float *eval(const char *path) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return NULL;
    int32_t toks[T];
    tokens(toks);
    float *logits = malloc(sizeof(float) * T * QW3_VOCAB);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 64, 7, &c)); /* batches of 7: the cache is used across batches */
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

static float *reference(bool tied) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/qwen3-tiny/logits_%s_24x%d.f32",
             getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..", tied ? "tied" : "untied", QW3_VOCAB);
    size_t len = 0;
    float *ref = (float *)tl_slurp(p, &len);
    CHECK_MSG(ref && len == sizeof(float) * T * QW3_VOCAB, "%s: missing or wrong size", p);
    if (ref && len != sizeof(float) * T * QW3_VOCAB) {
        free(ref);
        ref = NULL;
    }
    return ref;
}

/* logits within 1e-4 of torch's (absolute, as for the Qwen2 fixture; relative to the largest
 * logit when that is above 1), perplexity within 1e-5 relative */
static void against_torch(const char *what, const float *logits, const float *ref) {
    if (!logits || !ref) return;
    int32_t toks[T];
    tokens(toks);
    double worst = 0, big = 1;
    for (int i = 0; i < T * QW3_VOCAB; i++) {
        worst = fmax(worst, fabs((double)logits[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    const double p = ppl_of(logits, toks), pr = ppl_of(ref, toks);
    fprintf(stderr, "  qwen3 %s: max |logit - torch| = %.3g (largest %.3g), ppl %.6f vs torch %.6f\n", what, worst,
            big, p, pr);
    CHECK_MSG(worst <= 1e-4 * big, "%s: logits differ from torch by %g", what, worst);
    CHECK_MSG(fabs(p - pr) <= 1e-5 * pr, "%s: ppl %.9g vs torch %.9g", what, p, pr);
}

static void check_u32(const sm_gguf *g, const char *key, uint64_t want) {
    uint64_t v = 0;
    CHECK_MSG(sm_gguf_get_u64(g, key, &v) == 0 && v == want, "%s: %llu, expected %llu", key, (unsigned long long)v,
              (unsigned long long)want);
}

/* f32: a converted F32 file (else a quantized one, whose tensors llama-quantize orders by name) */
static void check_gguf(const char *path, bool tied, bool f32) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    const char *s = sm_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, "qwen3"));
    check_u32(g, "qwen3.block_count", QW_LAYERS);
    check_u32(g, "qwen3.embedding_length", QW_HIDDEN);
    check_u32(g, "qwen3.attention.head_count", QW_HEADS);
    check_u32(g, "qwen3.attention.head_count_kv", QW_KV);
    check_u32(g, "qwen3.attention.key_length", QW3_HD);
    check_u32(g, "qwen3.attention.value_length", QW3_HD);
    check_u32(g, "qwen3.context_length", 256);
    CHECK(sm_gguf_find(g, "qwen3.vocab_size") == NULL && sm_gguf_find(g, "qwen3.rope.dimension_count") == NULL);
    double theta = 0;
    CHECK(sm_gguf_get_f64(g, "qwen3.rope.freq_base", &theta) == 0 && theta == 1e6);
    s = sm_gguf_get_str(g, "tokenizer.ggml.model");
    CHECK(s && !strcmp(s, "gpt2"));
    s = sm_gguf_get_str(g, "tokenizer.ggml.pre");
    CHECK(s && !strcmp(s, "qwen2"));
    s = sm_gguf_get_str(g, "tokenizer.chat_template");
    CHECK(s && strstr(s, "<|im_start|>assistant"));
    for (int l = 0; l < QW_LAYERS; l++)
        for (int k = 0; k < 2; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.attn_%c_norm.weight", l, k ? 'k' : 'q');
            const sm_tensor *t = sm_gguf_find_tensor(g, n);
            CHECK_MSG(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == QW3_HD, "%s", n);
        }
    CHECK(sm_gguf_find_tensor(g, "blk.0.attn_q.bias") == NULL);
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.1.attn_q.weight");
    CHECK(q && q->shape[0] == QW_HEADS * QW3_HD && q->shape[1] == QW_HIDDEN && (!f32 || q->type == SM_TYPE_F32));
    CHECK((sm_gguf_find_tensor(g, "output.weight") == NULL) == tied);
    CHECK(sm_gguf_n_tensors(g) == (size_t)(2 + !tied + QW_LAYERS * 11));
    if (!tied && f32) {
        /* converted: the order llama.cpp's convert_hf_to_gguf.py writes for this checkpoint (its safetensors
         * reader lists a file's tensors by HF name; the fixture's header and data are in another
         * order): checked against its output for the same files */
        static const char *const ORDER[] = {
            "output.weight", "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight", "blk.0.ffn_gate.weight",
            "blk.0.ffn_up.weight", "blk.0.ffn_norm.weight", "blk.0.attn_k_norm.weight", "blk.0.attn_k.weight",
            "blk.0.attn_output.weight", "blk.0.attn_q_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight",
            "blk.1.attn_norm.weight", "blk.1.ffn_down.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight",
            "blk.1.ffn_norm.weight", "blk.1.attn_k_norm.weight", "blk.1.attn_k.weight", "blk.1.attn_output.weight",
            "blk.1.attn_q_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_v.weight", "output_norm.weight"};
        for (size_t i = 0; i < sizeof ORDER / sizeof ORDER[0] && i < sm_gguf_n_tensors(g); i++)
            CHECK_MSG(!strcmp(sm_gguf_tensor(g, i)->name, ORDER[i]), "tensor %zu: %s, llama.cpp writes %s", i,
                      sm_gguf_tensor(g, i)->name, ORDER[i]);
    }
    sm_gguf_close(g);
}

static void logits_hf_and_gguf(void) {
    for (int tied = 1; tied >= 0; tied--) {
        const char *dir = tl_make_qwen3_tiny(tied);
        CHECK(dir != NULL);
        float *ref = reference(tied);
        if (!dir || !ref) {
            free(ref);
            continue;
        }
        float *a = eval(dir);
        against_torch(tied ? "HF, tied" : "HF, untied", a, ref);
        const char *gguf = tl_tmp(tied ? "qwen3-tied.gguf" : "qwen3-untied.gguf");
        sm_convert_opts co = {.outtype = "f32", .quiet = true};
        CHECK_OK(sm_convert(dir, gguf, &co, NULL));
        check_gguf(gguf, tied, true);
        float *b = eval(gguf);
        against_torch(tied ? "GGUF f32, tied" : "GGUF f32, untied", b, ref);
        free(a);
        free(b);
        free(ref);
    }
}

/* smelt ppl on the HF directory and on its GGUF: the same numbers (same tokens, same logits) */
static void cli_ppl(void) {
    const char *dir = tl_make_qwen3_tiny(false);
    if (!dir) return;
    const char *gguf = tl_tmp("qwen3-cli.gguf");
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

/* quantize: q/k norms stay F32; the quantized model's logits track the F32 one's */
static void quantize(void) {
    const char *dir = tl_make_qwen3_tiny(false);
    if (!dir) return;
    const char *f32 = tl_tmp("qwen3-q-src.gguf");
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, f32, &co, NULL));
    float *base = eval(f32);
    static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
    for (size_t r = 0; r < 2 && base; r++) {
        char name[64];
        snprintf(name, sizeof name, "qwen3-%s.gguf", RECIPES[r]);
        const char *q = tl_tmp(name);
        sm_quantize_opts qo = {.recipe = RECIPES[r], .quiet = true};
        sm_quantize_report qr;
        CHECK_OK(sm_quantize_gguf(f32, q, &qo, &qr));
        check_gguf(q, false, false);
        float *l = eval(q);
        double worst = 0, big = 0;
        for (int i = 0; l && i < T * QW3_VOCAB; i++) {
            worst = fmax(worst, fabs((double)l[i] - base[i]));
            big = fmax(big, fabs(base[i]));
        }
        fprintf(stderr, "  qwen3 %s: max |logit - f32| = %.3g of %.3g\n", RECIPES[r], worst, big);
        CHECK(l && worst < (r == 0 ? 0.02 : 0.25) * big);
        free(l);
    }
    free(base);
}

/* imatrix and GPTQ through the Qwen3 block */
static void calibration(void) {
    const char *dir = tl_make_qwen3_tiny(false);
    if (!dir) return;
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s -o %s --ctx 64 --chunks 4", dir, tl_asset(CALIB_TEXT),
             tl_tmp("qwen3.imatrix"));
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "quantize %s/../qwen3-q-src.gguf %s Q4_K_M --imatrix %s", dir, tl_tmp("qwen3-imat.gguf"),
             tl_tmp("qwen3.imatrix"));
    out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 --to gguf:Q4_0 -o %s", dir,
             tl_asset(CALIB_TEXT), tl_tmp("qwen3-gptq.gguf"));
    out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    check_gguf(tl_tmp("qwen3-gptq.gguf"), false, false);
    float *l = eval(tl_tmp("qwen3-gptq.gguf"));
    free(l);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 --bits 4 --group 32 --to hf -o %s", dir,
             tl_asset(CALIB_TEXT), tl_tmp("qwen3-gptq-hf"));
    out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
    l = eval(tl_tmp("qwen3-gptq-hf"));
    free(l);
}

/* A copy of the tied fixture without the tensor `drop`: refused by the converter and the runtime,
 * naming it. And the fixture's tensors under a Qwen2 config: q_norm is not a Qwen2 tensor. */
static void missing_qk_norm(void) {
    const char *dir = tl_make_qwen3_tiny(true);
    if (!dir) return;
    const char *bad = tl_tmp("qwen3-no-knorm");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s'/*.json '%s'/", bad, bad, dir, bad);
    CHECK(system(cmd) == 0);
    sm_ckpt *c = NULL;
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    CHECK_OK(sm_ckpt_open(st, &c));
    if (!c) return;
    const char *drop = "model.layers.1.self_attn.k_norm.weight";
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
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), "blk.1.attn_k_norm.weight is missing");

    const char *q2 = tl_tmp("qwen3-as-qwen2");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && sed -i 's/Qwen3ForCausalLM/Qwen2ForCausalLM/' '%s/config.json'",
             q2, dir, q2, q2);
    CHECK(system(cmd) == 0);
    CHECK_FAILS_WITH(sm_convert(q2, tl_tmp("bad2.gguf"), &co, NULL), "is not part of a Qwen2ForCausalLM model");
}

static void help_lists_archs(void) {
    char *out = NULL;
    CHECK(tl_run_smelt("help convert", &out) == 0);
    char list[256];
    snprintf(list, sizeof list, "%s", sm_supported_archs());
    for (char *tok = strtok(list, ", "); tok; tok = strtok(NULL, ", "))
        CHECK_MSG(out && strstr(out, tok), "smelt help convert does not list %s", tok);
    CHECK(strstr(sm_supported_archs(), "Qwen3ForCausalLM") != NULL);
    free(out);
}

void run_tests(void) {
    TEST(logits_hf_and_gguf);
    TEST(cli_ppl);
    TEST(quantize);
    TEST(calibration);
    TEST(missing_qk_norm);
    TEST(help_lists_archs);
}

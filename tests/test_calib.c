/* test_calib.c - calibration: sample cutting (deterministic, BOS-started windows), the
 * activation observer and block-at-a-time evaluation against the full forward pass, the
 * importance matrix on tiny-llama-kjv (properties, block 0's sums recomputed straight from the
 * checkpoint's tensors, thread invariance, file round trip, and llama-imatrix's values when
 * LLAMA_CPP_BIN is set), and short smelt gptq runs: a GGUF whose perplexity beats
 * round-to-nearest on the same grid, an HF GPTQ checkpoint the runtime loads, its conversion
 * to GGUF (lossless Q4_0 repacking), and thread invariance. */
#include "testlib.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "formats/formats.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KJV_F32 "models/tiny-llama-kjv/f32"
#define CALIB_TEXT "text/kjv-calib.txt"
#define EVAL_TEXT "text/kjv-eval.txt"

/* ---- shared fixtures: the F32 model, its GGUF conversion, the calibration tokens ---- */

static sm_model *g_model;
static int32_t *g_calib;
static size_t g_n_calib;
static char g_gguf[512];

static sm_model *model(void) {
    if (!g_model && sm_model_load(tl_asset(KJV_F32), NULL, &g_model)) {
        fprintf(stderr, "load: %s\n", sm_last_error());
        g_model = NULL;
    }
    return g_model;
}

static int calib_tokens(void) {
    if (g_calib) return 0;
    const sm_tokenizer *tok;
    if (!model() || sm_model_tokenizer(g_model, &tok)) return -1;
    return sm_calib_tokenize_file(tok, tl_asset(CALIB_TEXT), false, &g_calib, &g_n_calib);
}

static const char *f32_gguf(void) {
    if (g_gguf[0]) return g_gguf;
    snprintf(g_gguf, sizeof g_gguf, "%s", tl_tmp("kjv-f32.gguf"));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    if (sm_convert(tl_asset(KJV_F32), g_gguf, &co, NULL)) {
        fprintf(stderr, "convert: %s\n", sm_last_error());
        g_gguf[0] = 0;
        return NULL;
    }
    return g_gguf;
}

/* ---- calibration sets ---- */

static void cut_random_deterministic(void) {
    int32_t text[1000];
    for (int i = 0; i < 1000; i++) text[i] = 100 + i;
    sm_calib_opts o = {.n_samples = 10, .seqlen = 32, .seed = 7};
    sm_calib_set a, b, c;
    CHECK_OK(sm_calib_cut(text, 1000, 1, &o, &a));
    CHECK_OK(sm_calib_cut(text, 1000, 1, &o, &b));
    o.seed = 8;
    CHECK_OK(sm_calib_cut(text, 1000, 1, &o, &c));
    CHECK(a.n_samples == 10 && a.seqlen == 32);
    CHECK(!memcmp(a.tokens, b.tokens, sizeof(int32_t) * 320) && !memcmp(a.starts, b.starts, sizeof(int64_t) * 10));
    CHECK(memcmp(a.starts, c.starts, sizeof(int64_t) * 10) != 0);
    bool windows_ok = true;
    for (int k = 0; k < 10; k++) {
        const int64_t s = a.starts[k];
        windows_ok &= s >= 0 && s <= 1000 - 32 && a.tokens[k * 32] == 1;
        for (int i = 1; i < 32; i++) windows_ok &= a.tokens[k * 32 + i] == text[s + i];
    }
    CHECK(windows_ok);
    /* the generator's first draws for seed 7 are not all the same window */
    bool spread = false;
    for (int k = 1; k < 10; k++) spread |= a.starts[k] != a.starts[0];
    CHECK(spread);
    sm_calib_set_free(&a);
    sm_calib_set_free(&b);
    sm_calib_set_free(&c);
}

static void cut_in_order(void) {
    int32_t text[100];
    for (int i = 0; i < 100; i++) text[i] = i;
    sm_calib_opts o = {.n_samples = 50, .seqlen = 30, .in_order = true};
    sm_calib_set s;
    CHECK_OK(sm_calib_cut(text, 100, -1, &o, &s)); /* 50 asked, 3 fit */
    CHECK(s.n_samples == 3);
    for (int k = 0; k < 3; k++) CHECK(s.starts[k] == 30 * k && s.tokens[30 * k] == 30 * k); /* no BOS: as is */
    sm_calib_set_free(&s);
    o.n_samples = 0;
    CHECK_OK(sm_calib_cut(text, 100, 5, &o, &s));
    CHECK(s.n_samples == 3 && s.tokens[30] == 5 && s.tokens[31] == 31);
    sm_calib_set_free(&s);
    o.seqlen = 101;
    CHECK_FAILS_WITH(sm_calib_cut(text, 100, 5, &o, &s), "fewer than one sequence");
    o.seqlen = 1;
    CHECK_FAILS_WITH(sm_calib_cut(text, 100, 5, &o, &s), "out of range");
}

static void tokenize_calib_text(void) {
    CHECK_OK(calib_tokens());
    CHECK(g_n_calib > 20000 && g_calib && g_calib[0] == 1); /* BOS first: the vocabulary adds it */
}

/* ---- observer and block evaluation ---- */

#define N_TOK 40

typedef struct capture_all {
    float *in[4][SM_IN_OUTPUT]; /* per layer, per block input: N_TOK x cols token-major */
    int64_t stop_layer;
    sm_linear_input stop_at;
} capture_all;

static int capture(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                   int64_t n) {
    capture_all *c = user;
    if (layer < 0) return 0;
    float *dst = c->in[layer][which];
    for (int64_t t = 0; t < n; t++)
        for (int64_t f = 0; f < cols; f++) dst[t * cols + f] = x[f * ld + t];
    return layer == c->stop_layer && which == c->stop_at ? 7 : 0;
}

static void alloc_capture(capture_all *c) {
    memset(c, 0, sizeof *c);
    c->stop_layer = -2;
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < SM_IN_OUTPUT; i++) c->in[l][i] = calloc(N_TOK * 768, sizeof(float));
}

static void free_capture(capture_all *c) {
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < SM_IN_OUTPUT; i++) free(c->in[l][i]);
}

static void block_eval_matches_forward(void) {
    if (!model() || calib_tokens()) return;
    const int64_t E = sm_model_hparams(g_model)->n_embd;
    capture_all full, blocks, own;
    alloc_capture(&full);
    alloc_capture(&blocks);
    alloc_capture(&own);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(g_model, 64, 64, &c));
    if (!c) return;
    CHECK_OK(sm_context_set_observer(c, capture, &full));
    CHECK_OK(sm_model_eval(g_model, c, g_calib, N_TOK, 0, 0, NULL));

    /* the same through embed + one block at a time: identical inputs everywhere */
    float *x = malloc(sizeof(float) * N_TOK * (size_t)E), *y = malloc(sizeof(float) * N_TOK * (size_t)E);
    CHECK_OK(sm_model_embed(g_model, g_calib, N_TOK, x));
    memcpy(y, x, sizeof(float) * N_TOK * (size_t)E);
    CHECK_OK(sm_context_set_observer(c, capture, &blocks));
    for (int64_t l = 0; l < 4; l++) CHECK_OK(sm_model_eval_block(g_model, c, l, NULL, x, N_TOK, 0));
    /* and with every linear replaced by its own float weights, in a block context (one layer of
     * KV cache, shared by the blocks as layer-by-layer calibration uses it) */
    float *w[4][SM_LIN_COUNT];
    sm_context *cb = NULL;
    CHECK_OK(sm_context_new_block(g_model, 64, 64, &cb));
    if (!cb) return;
    CHECK_FAILS_WITH(sm_model_eval(g_model, cb, g_calib, N_TOK, 0, 0, NULL), "block context");
    CHECK_OK(sm_context_set_observer(cb, capture, &own));
    for (int64_t l = 0; l < 4; l++) {
        sm_block_override ov;
        for (int i = 0; i < SM_LIN_COUNT; i++) {
            int64_t rows, cols;
            CHECK_OK(sm_model_linear_shape(g_model, l, (sm_linear)i, &rows, &cols));
            w[l][i] = malloc(sizeof(float) * (size_t)(rows * cols));
            CHECK_OK(sm_model_linear_f32(g_model, l, (sm_linear)i, w[l][i]));
            ov.w[i] = w[l][i];
        }
        CHECK_OK(sm_model_eval_block(g_model, cb, l, &ov, y, N_TOK, 0));
    }
    sm_context_free(cb);
    bool same = true, same_own = true;
    const int64_t cols[SM_IN_OUTPUT] = {E, E, E, 768};
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < SM_IN_OUTPUT; i++) {
            same &= !memcmp(full.in[l][i], blocks.in[l][i], sizeof(float) * (size_t)(N_TOK * cols[i]));
            same_own &= !memcmp(full.in[l][i], own.in[l][i], sizeof(float) * (size_t)(N_TOK * cols[i]));
        }
    CHECK_MSG(same, "observed inputs differ between sm_model_eval and sm_model_eval_block");
    CHECK_MSG(same_own, "replacing the linears by their own float weights changed the activations");
    CHECK(!memcmp(x, y, sizeof(float) * N_TOK * (size_t)E));

    /* an observer that stops the block: its value comes back and x is untouched */
    blocks.stop_layer = 2;
    blocks.stop_at = SM_IN_FFN;
    CHECK_OK(sm_context_set_observer(c, capture, &blocks));
    memcpy(y, x, sizeof(float) * N_TOK * (size_t)E);
    CHECK(sm_model_eval_block(g_model, c, 2, NULL, y, N_TOK, 0) == 7);
    CHECK(!memcmp(x, y, sizeof(float) * N_TOK * (size_t)E));
    CHECK(sm_model_eval(g_model, c, g_calib, N_TOK, 0, 0, NULL) == 7);
    CHECK_FAILS_WITH(sm_model_eval_block(g_model, c, 4, NULL, y, N_TOK, 0), "out of range");
    CHECK_FAILS_WITH(sm_model_eval_block(g_model, c, 0, NULL, y, 65, 0), "cannot evaluate");

    for (int l = 0; l < 4; l++)
        for (int i = 0; i < SM_LIN_COUNT; i++) free(w[l][i]);
    free(x);
    free(y);
    sm_context_free(c);
    free_capture(&full);
    free_capture(&blocks);
    free_capture(&own);
}

/* ---- importance matrix ---- */

#define IM_CTX 64
#define IM_CHUNKS 3

static int compute_imatrix(const sm_model *m, bool output, sm_imatrix *im) {
    sm_imatrix_opts o = {.n_ctx = IM_CTX, .n_chunks = IM_CHUNKS, .bos_id = 1, .process_output = output,
                         .dataset = "kjv-calib.txt", .quiet = true};
    sm_imatrix_report rep;
    memset(im, 0, sizeof *im);
    return sm_imatrix_compute(m, g_calib, (int64_t)g_n_calib, &o, im, &rep);
}

static const sm_imatrix_entry *entry(const sm_imatrix *im, const char *name) {
    for (size_t i = 0; i < im->n_entries; i++)
        if (!strcmp(im->entries[i].name, name)) return &im->entries[i];
    return NULL;
}

/* blk.0's attention input straight from the checkpoint: rmsnorm(embedding) * attn_norm. */
static void block0_reference(double *sums) {
    sm_ckpt *ck = NULL;
    CHECK_OK(sm_ckpt_open(tl_asset(KJV_F32), &ck));
    if (!ck) return;
    const sm_tensor *emb = sm_ckpt_find(ck, "model.embed_tokens.weight");
    const sm_tensor *nrm = sm_ckpt_find(ck, "model.layers.0.input_layernorm.weight");
    CHECK(emb && nrm && emb->type == SM_TYPE_F32 && nrm->type == SM_TYPE_F32);
    if (!emb || !nrm) return;
    const float *E = emb->data, *w = nrm->data;
    memset(sums, 0, sizeof(double) * 256);
    for (int k = 0; k < IM_CHUNKS; k++)
        for (int t = 0; t < IM_CTX; t++) {
            const int32_t id = t == 0 ? 1 : g_calib[k * IM_CTX + t];
            const float *x = E + (size_t)id * 256;
            double ss = 0;
            for (int f = 0; f < 256; f++) ss += (double)x[f] * x[f];
            const double inv = 1.0 / sqrt(ss / 256 + 1e-5);
            for (int f = 0; f < 256; f++) {
                const double y = x[f] * inv * w[f];
                sums[f] += y * y;
            }
        }
    sm_ckpt_close(ck);
}

static void imatrix_properties(void) {
    if (!model() || calib_tokens()) return;
    sm_imatrix im;
    CHECK_OK(compute_imatrix(g_model, false, &im));
    CHECK(im.n_entries == 28 && im.chunk_count == IM_CHUNKS && im.chunk_size == IM_CTX);
    CHECK(im.n_datasets == 1 && !strcmp(im.datasets[0], "kjv-calib.txt"));
    const char *const lin[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    bool names = true, counts = true, positive = true;
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < 7; i++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, lin[i]);
            const sm_imatrix_entry *e = entry(&im, n);
            names &= e != NULL;
            if (!e) continue;
            counts &= e->n_mat == 1 && e->counts[0] == IM_CHUNKS * IM_CTX && e->n_values == (i == 6 ? 768 : 256);
            for (int64_t j = 0; j < e->n_values; j++) positive &= isfinite(e->sums[j]) && e->sums[j] > 0;
        }
    CHECK(names);
    CHECK(counts);
    CHECK(positive);
    CHECK(!entry(&im, "output.weight"));
    /* linears that share an input share the sums */
    const sm_imatrix_entry *q = entry(&im, "blk.1.attn_q.weight"), *v = entry(&im, "blk.1.attn_v.weight");
    const sm_imatrix_entry *g = entry(&im, "blk.2.ffn_gate.weight"), *u = entry(&im, "blk.2.ffn_up.weight");
    CHECK(q && v && !memcmp(q->sums, v->sums, 256 * sizeof(float)));
    CHECK(g && u && !memcmp(g->sums, u->sums, 256 * sizeof(float)));
    /* block 0's attention input, recomputed from the checkpoint without the runtime */
    double ref[256];
    block0_reference(ref);
    const sm_imatrix_entry *k0 = entry(&im, "blk.0.attn_k.weight");
    double worst = 0;
    for (int f = 0; k0 && f < 256; f++) {
        const double d = fabs(k0->sums[f] - ref[f]) / ref[f];
        if (d > worst) worst = d;
    }
    CHECK_MSG(k0 && worst < 1e-5, "blk.0 sums differ from the direct computation by %g (relative)", worst);

    /* the same bits with one thread; file round trip (GGUF and .dat) */
    sm_imatrix one;
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_OK(compute_imatrix(g_model, true, &one));
    omp_set_num_threads(nt);
    CHECK(one.n_entries == 29 && entry(&one, "output.weight") && entry(&one, "output.weight")->counts[0] == 192);
    bool same = true;
    for (size_t i = 0; i < im.n_entries; i++) {
        const sm_imatrix_entry *e = entry(&one, im.entries[i].name);
        same &= e && !memcmp(e->sums, im.entries[i].sums, sizeof(float) * (size_t)e->n_values);
    }
    CHECK_MSG(same, "imatrix sums depend on the thread count");
    sm_imatrix back;
    CHECK_OK(sm_imatrix_save_gguf(&im, tl_tmp("im.gguf")));
    CHECK_OK(sm_imatrix_load(tl_tmp("im.gguf"), &back));
    CHECK(back.n_entries == 28 && back.chunk_count == IM_CHUNKS && back.chunk_size == IM_CTX);
    const sm_imatrix_entry *b = entry(&back, "blk.3.ffn_down.weight"), *a = entry(&im, "blk.3.ffn_down.weight");
    CHECK(a && b && !memcmp(a->sums, b->sums, 768 * sizeof(float)) && b->counts[0] == a->counts[0]);
    sm_imatrix_free(&back);
    sm_imatrix_free(&one);
    sm_imatrix_free(&im);

    /* too little text for two chunks */
    sm_imatrix_opts o = {.n_ctx = 512, .bos_id = 1, .quiet = true};
    sm_imatrix_report rep;
    memset(&im, 0, sizeof im);
    CHECK_FAILS_WITH(sm_imatrix_compute(g_model, g_calib, 1000, &o, &im, &rep), "needs at least 1024");
    sm_imatrix_free(&im);
}

/* With LLAMA_CPP_BIN: llama-imatrix on the same GGUF, text and context gives the same file up to
 * float rounding (it sums in float, we in double). */
static void imatrix_vs_llamacpp(void) {
    const char *bin = tl_llama_cpp_bin("llama-imatrix comparison");
    if (!bin) return;
    const char *gguf = f32_gguf();
    if (!gguf) return;
    char cmd[4096], *log = NULL;
    snprintf(cmd, sizeof cmd, "%s/llama-imatrix -m %s -f %s -c %d --chunks %d -t 2 --no-ppl -o %s > %s 2>&1", bin,
             gguf, tl_asset(CALIB_TEXT), IM_CTX, IM_CHUNKS, tl_tmp("lc.gguf"), tl_tmp("lc.log"));
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s --ctx %d --chunks %d -o %s --quiet", gguf, tl_asset(CALIB_TEXT),
             IM_CTX, IM_CHUNKS, tl_tmp("ours.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    sm_imatrix a, b;
    CHECK_OK(sm_imatrix_load(tl_tmp("ours.gguf"), &a));
    CHECK_OK(sm_imatrix_load(tl_tmp("lc.gguf"), &b));
    CHECK(a.n_entries == b.n_entries && a.chunk_count == b.chunk_count && a.chunk_size == b.chunk_size);
    double worst = 0;
    for (size_t i = 0; i < a.n_entries && i < b.n_entries; i++) {
        CHECK(!strcmp(a.entries[i].name, b.entries[i].name) && a.entries[i].counts[0] == b.entries[i].counts[0]);
        for (int64_t j = 0; j < a.entries[i].n_values && j < b.entries[i].n_values; j++) {
            const double d = fabs(a.entries[i].sums[j] - b.entries[i].sums[j]) / fabs(b.entries[i].sums[j]);
            if (d > worst) worst = d;
        }
    }
    fprintf(stderr, "  llama-imatrix vs smelt imatrix: max relative difference %.3g\n", worst);
    CHECK(worst < 2e-3);
    sm_imatrix_free(&a);
    sm_imatrix_free(&b);

    /* quantized with llama-imatrix's file, llama-quantize and smelt quantize write the same
     * file, byte for byte: tensor data and metadata, quantize.imatrix.* keys included */
    snprintf(cmd, sizeof cmd, "%s/llama-quantize --imatrix %s %s %s Q4_K_M 2 > %s 2>&1", bin, tl_tmp("lc.gguf"), gguf,
             tl_tmp("lq.gguf"), tl_tmp("lq.log"));
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "quantize %s %s Q4_K_M --imatrix %s --quiet", gguf, tl_tmp("sq.gguf"), tl_tmp("lc.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    CHECK_MSG(tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf")),
              "llama-quantize --imatrix and smelt quantize --imatrix differ");
}

static void imatrix_cli(void) {
    const char *gguf = f32_gguf();
    if (!gguf) return;
    char cmd[2048], *log = NULL;
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s --ctx 64 --chunks 2 --format dat -o %s --json", gguf,
             tl_asset(CALIB_TEXT), tl_tmp("im.dat"));
    CHECK(tl_run_smelt(cmd, &log) == 0 && log && strstr(log, "\"entries\":28") && strstr(log, "\"chunks\":2"));
    free(log);
    sm_imatrix im;
    CHECK_OK(sm_imatrix_load(tl_tmp("im.dat"), &im));
    CHECK(im.legacy && im.n_entries == 28 && im.chunk_count == 2);
    sm_imatrix_free(&im);
    /* quantizing with it records it as llama-quantize does (its keys, u32 counts) */
    snprintf(cmd, sizeof cmd, "quantize %s %s Q4_K_M --imatrix %s --quiet", gguf, tl_tmp("im-q4km.gguf"),
             tl_tmp("im.dat"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(tl_tmp("im-q4km.gguf"), &g));
    if (g) {
        const char *file = sm_gguf_get_str(g, "quantize.imatrix.file");
        const char *dataset = sm_gguf_get_str(g, "quantize.imatrix.dataset");
        uint64_t entries = 0, chunks = 0;
        CHECK(file && !strcmp(file, tl_tmp("im.dat")));
        CHECK(dataset && strstr(dataset, "kjv-calib.txt"));
        CHECK(sm_gguf_get_u64(g, "quantize.imatrix.entries_count", &entries) == 0 && entries == 28);
        CHECK(sm_gguf_get_u64(g, "quantize.imatrix.chunks_count", &chunks) == 0 && chunks == 2);
        sm_gguf_close(g);
    }
    /* and without one, none of them */
    snprintf(cmd, sizeof cmd, "quantize %s %s Q4_0 --quiet", gguf, tl_tmp("plain.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    CHECK_OK(sm_gguf_open(tl_tmp("plain.gguf"), &g));
    if (g) {
        CHECK(!sm_gguf_find(g, "quantize.imatrix.file"));
        sm_gguf_close(g);
    }
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s --format xyz -o %s", gguf, tl_asset(CALIB_TEXT), tl_tmp("x"));
    CHECK(tl_run_smelt(cmd, &log) == 2 && strstr(log, "--format"));
    free(log);
    snprintf(cmd, sizeof cmd, "imatrix %s -o %s", gguf, tl_tmp("x"));
    CHECK(tl_run_smelt(cmd, &log) == 2 && strstr(log, "--text"));
    free(log);
}

/* ---- GPTQ ---- */

static double ppl_of(const char *path, int64_t chunks) {
    sm_model *m = NULL;
    const sm_tokenizer *tok;
    int32_t *ids = NULL;
    size_t n = 0;
    double ppl = INFINITY;
    sm_ppl_opts o = {.n_ctx = 128, .n_chunks = chunks, .bos_id = 1, .quiet = true};
    sm_ppl_result r;
    if (sm_model_load(path, NULL, &m) || sm_model_tokenizer(m, &tok) ||
        sm_calib_tokenize_file(tok, tl_asset(EVAL_TEXT), false, &ids, &n) ||
        sm_perplexity(m, ids, (int64_t)n, &o, &r)) {
        fprintf(stderr, "ppl of %s: %s\n", path, sm_last_error());
    } else {
        ppl = r.ppl;
        sm_ppl_result_free(&r);
    }
    free(ids);
    sm_model_free(m);
    return ppl;
}

static void gptq_gguf_beats_rtn(void) {
    const char *gguf = f32_gguf();
    if (!gguf) return;
    char cmd[2048], *log = NULL;
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 8 --seqlen 128 --to gguf:Q4_0 -o %s --json", gguf,
             tl_asset(CALIB_TEXT), tl_tmp("gptq-q4_0.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    cJSON *j = log ? cJSON_Parse(log) : NULL;
    CHECK_MSG(j != NULL, "smelt gptq --json: %s", log ? log : "(no output)");
    const cJSON *layers = cJSON_GetObjectItem(j, "layers");
    CHECK(cJSON_GetArraySize(layers) == 4);
    const cJSON *l0 = cJSON_GetArrayItem(layers, 0);
    const cJSON *lin = cJSON_GetObjectItem(l0, "linears");
    CHECK(cJSON_GetArraySize(lin) == 7);
    bool lower = true;
    for (int i = 0; i < cJSON_GetArraySize(lin); i++) {
        const cJSON *x = cJSON_GetArrayItem(lin, i);
        lower &= cJSON_GetObjectItem(x, "loss_gptq")->valuedouble < cJSON_GetObjectItem(x, "loss_rtn")->valuedouble;
        CHECK(!strcmp(cJSON_GetObjectItem(x, "type")->valuestring, "q4_0"));
    }
    CHECK_MSG(lower, "GPTQ's proxy loss is not below round-to-nearest's for every linear of block 0");
    cJSON_Delete(j);
    free(log);

    snprintf(cmd, sizeof cmd, "quantize %s %s Q4_0 --quiet", gguf, tl_tmp("rtn-q4_0.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    /* the file: GGUF metadata of the source plus file type, every linear in Q4_0 */
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(tl_tmp("gptq-q4_0.gguf"), &g));
    if (g) {
        uint64_t ft = 0, qv = 0;
        CHECK(sm_gguf_get_u64(g, "general.file_type", &ft) == 0 && ft == 2);
        CHECK(sm_gguf_get_u64(g, "general.quantization_version", &qv) == 0 && qv == 2);
        CHECK(sm_gguf_n_tensors(g) == 39 && sm_gguf_find(g, "tokenizer.ggml.tokens"));
        const sm_tensor *t = sm_gguf_find_tensor(g, "blk.3.ffn_down.weight");
        CHECK(t && t->type == SM_TYPE_Q4_0);
        t = sm_gguf_find_tensor(g, "output.weight");
        CHECK(t && t->type == SM_TYPE_Q6_K);
        sm_gguf_close(g);
    }
    const double p_f32 = ppl_of(gguf, 12), p_rtn = ppl_of(tl_tmp("rtn-q4_0.gguf"), 12),
                 p_gptq = ppl_of(tl_tmp("gptq-q4_0.gguf"), 12);
    fprintf(stderr, "  ppl (12 chunks of 128): f32 %.4f, Q4_0 rtn %.4f, Q4_0 gptq %.4f\n", p_f32, p_rtn, p_gptq);
    CHECK(isfinite(p_gptq) && p_gptq < p_rtn && p_gptq > p_f32 * 0.98);
}

/* GPTQ on the low-bit grids (Q2_K, Q3_K via the Q3_K_S mixture, IQ4_NL, IQ4_XS): every
 * block-0 linear is GPTQ-quantized (method "gptq") with a proxy loss below round-to-nearest's
 * on the same grid, and the model's perplexity is below smelt quantize's (no importance). */
static void gptq_lowbit_beats_rtn(void) {
    const char *gguf = f32_gguf();
    if (!gguf) return;
    const char *const recipes[] = {"Q2_K", "Q3_K_S", "IQ4_NL", "IQ4_XS"};
    const double p_f32 = ppl_of(gguf, 12);
    for (size_t r = 0; r < sizeof recipes / sizeof recipes[0]; r++) {
        char cmd[2048], *log = NULL, out[256], rtn[256];
        snprintf(out, sizeof out, "%s", tl_tmp("gptq-low.gguf"));
        snprintf(rtn, sizeof rtn, "%s", tl_tmp("rtn-low.gguf"));
        /* 32 samples: with 8, IQ4_XS's GPTQ file measured above round-to-nearest (18.58 vs 18.50:
         * too little calibration for its Hessians); with 32, 18.39 */
        snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 32 --seqlen 128 --to gguf:%s -o %s --json", gguf,
                 tl_asset(CALIB_TEXT), recipes[r], out);
        CHECK(tl_run_smelt(cmd, &log) == 0);
        cJSON *j = log ? cJSON_Parse(log) : NULL;
        CHECK_MSG(j != NULL, "smelt gptq --json: %s", log ? log : "(no output)");
        const cJSON *lin = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0), "linears");
        CHECK(cJSON_GetArraySize(lin) == 7);
        int worse = 0, n_low = 0;
        for (int i = 0; i < cJSON_GetArraySize(lin); i++) {
            const cJSON *x = cJSON_GetArrayItem(lin, i);
            const char *type = cJSON_GetObjectItem(x, "type")->valuestring;
            n_low += !strcmp(type, "q2_K") || !strcmp(type, "q3_K") || !strcmp(type, "iq4_nl") || !strcmp(type, "iq4_xs");
            worse += strcmp(cJSON_GetObjectItem(x, "method")->valuestring, "gptq") ||
                     !(cJSON_GetObjectItem(x, "loss_gptq")->valuedouble < cJSON_GetObjectItem(x, "loss_rtn")->valuedouble);
        }
        CHECK_MSG(worse == 0 && n_low > 0, "%s: %d block-0 linears not GPTQ or not below rtn, %d on a low-bit grid",
                  recipes[r], worse, n_low);
        cJSON_Delete(j);
        free(log);
        snprintf(cmd, sizeof cmd, "quantize %s %s %s --quiet", gguf, rtn, recipes[r]);
        CHECK(tl_run_smelt(cmd, &log) == 0);
        free(log);
        const double p_rtn = ppl_of(rtn, 12), p_gptq = ppl_of(out, 12);
        fprintf(stderr, "  %s ppl (12 chunks of 128): f32 %.4f, rtn %.4f, gptq %.4f\n", recipes[r], p_f32, p_rtn, p_gptq);
        CHECK_MSG(isfinite(p_gptq) && p_gptq < p_rtn && p_gptq > p_f32 * 0.98, "%s", recipes[r]);
    }
}

static void gptq_hf_checkpoint(void) {
    char cmd[2048], *log = NULL;
    const char *dir = tl_tmp("gptq-hf");
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 8 --seqlen 64 --bits 4 --group 64 --act-order --asym --to hf "
             "-o %s --quiet --no-loss", tl_asset(KJV_F32), tl_asset(CALIB_TEXT), dir);
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *txt = tl_slurp(path, &len);
    cJSON *cfg = txt ? cJSON_Parse(txt) : NULL;
    const cJSON *qc = cJSON_GetObjectItem(cfg, "quantization_config");
    sm_gptq_hf_config c;
    CHECK_OK(sm_gptq_hf_config_parse(qc, "config.json", &c));
    CHECK(c.bits == 4 && c.group_size == 64 && c.desc_act && !c.sym && !c.v2);
    cJSON_Delete(cfg);
    free(txt);
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    CHECK(sm_is_file(path));
    sm_ckpt *ck = NULL;
    CHECK_OK(sm_ckpt_open(dir, &ck));
    if (ck) {
        const sm_tensor *qw = sm_ckpt_find(ck, "model.layers.0.mlp.down_proj.qweight");
        const sm_tensor *sc = sm_ckpt_find(ck, "model.layers.0.mlp.down_proj.scales");
        CHECK(qw && qw->type == SM_TYPE_I32 && qw->shape[0] == 768 * 4 / 32 && qw->shape[1] == 256);
        CHECK(sc && sc->type == SM_TYPE_F16 && sc->shape[0] == 768 / 64 && sc->shape[1] == 256);
        CHECK(!sm_ckpt_find(ck, "model.layers.0.mlp.down_proj.weight"));
        const sm_tensor *e = sm_ckpt_find(ck, "model.embed_tokens.weight");
        CHECK(e && e->type == SM_TYPE_F16);
        sm_ckpt_close(ck);
    }
    /* the runtime reads it back (dequantized at load) */
    const double p = ppl_of(dir, 6), p_f32 = ppl_of(tl_asset(KJV_F32), 6);
    fprintf(stderr, "  ppl (6 chunks of 128): f32 %.4f, HF GPTQ 4-bit g64 act-order asym %.4f\n", p_f32, p);
    CHECK(isfinite(p) && p > p_f32 * 0.98 && p < p_f32 * 1.25);
}

/* Largest |a - b| over a block linear of two loaded models; a's q/k rows permuted from HF's
 * rotate_half order to ggml's first when permute is set. */
static double linear_diff(const sm_model *a, const sm_model *b, int64_t l, sm_linear which, int64_t heads) {
    int64_t r, c, r2, c2;
    if (sm_model_linear_shape(a, l, which, &r, &c) || sm_model_linear_shape(b, l, which, &r2, &c2) || r != r2 || c != c2)
        return INFINITY;
    float *x = malloc(sizeof(float) * (size_t)(r * c)), *y = malloc(sizeof(float) * (size_t)(r * c)),
          *p = malloc(sizeof(float) * (size_t)(r * c));
    double worst = INFINITY;
    if (!sm_model_linear_f32(a, l, which, x) && !sm_model_linear_f32(b, l, which, y)) {
        if (heads) sm_permute_rope_rows(x, p, r, c, heads);
        else memcpy(p, x, sizeof(float) * (size_t)(r * c));
        worst = 0;
        for (int64_t i = 0; i < r * c; i++) worst = fmax(worst, fabs((double)p[i] - y[i]));
    }
    free(x);
    free(y);
    free(p);
    return worst;
}

/* smelt convert of HF GPTQ checkpoints: symmetric 4-bit groups of 32 (and of 128: four
 * blocks sharing the group's scale) become Q4_0 blocks with exactly the same values; act-order / asymmetric ones (gptq_hf_checkpoint's) are dequantized
 * (F32 here: exact too). */
static void gptq_hf_to_gguf(void) {
    const char *const variants[3][2] = {{"--group 32", "q4_0"}, {"", "f32"}, {"--group 128", "q4_0"}};
    for (int v = 0; v < 3; v++) {
        char cmd[2048], *log = NULL, dir[64], gguf[64];
        snprintf(dir, sizeof dir, v == 0 ? "hf-g32" : v == 1 ? "gptq-hf" : "hf-g128");
        snprintf(gguf, sizeof gguf, "hf-%d.gguf", v);
        if (v != 1) {
            snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 %s --to hf -o %s --quiet --no-loss",
                     tl_asset(KJV_F32), tl_asset(CALIB_TEXT), variants[v][0], tl_tmp(dir));
            CHECK(tl_run_smelt(cmd, &log) == 0);
            free(log);
        }
        snprintf(cmd, sizeof cmd, "convert %s -o %s --outtype %s --quiet", tl_tmp(dir), tl_tmp(gguf),
                 v != 1 ? "f16" : "f32");
        CHECK(tl_run_smelt(cmd, &log) == 0);
        free(log);
        sm_gguf *g = NULL;
        CHECK_OK(sm_gguf_open(tl_tmp(gguf), &g));
        if (g) {
            const sm_tensor *t = sm_gguf_find_tensor(g, "blk.1.ffn_down.weight");
            CHECK_MSG(t && !strcmp(sm_type_name(t->type), variants[v][1]), "%s: %s", dir,
                      t ? sm_type_name(t->type) : "missing");
            uint64_t ft = 99;
            CHECK(sm_gguf_get_u64(g, "general.file_type", &ft) == 0 && ft == (v != 1 ? 2u : 0u));
            sm_gguf_close(g);
        }
        sm_model *hf = NULL, *gg = NULL;
        CHECK_OK(sm_model_load(tl_tmp(dir), NULL, &hf));
        CHECK_OK(sm_model_load(tl_tmp(gguf), NULL, &gg));
        if (!hf || !gg) {
            sm_model_free(hf);
            sm_model_free(gg);
            continue;
        }
        double worst = 0;
        for (int64_t l = 0; l < 4; l++)
            for (int i = 0; i < SM_LIN_COUNT; i++) {
                const int64_t heads = i == SM_LIN_Q ? 8 : i == SM_LIN_K ? 4 : 0;
                worst = fmax(worst, linear_diff(hf, gg, l, (sm_linear)i, heads));
            }
        CHECK_MSG(worst == 0, "%s: converted weights differ from the checkpoint's by %g", dir, worst);
        sm_model_free(hf);
        sm_model_free(gg);
    }
}

/* The same bytes with 1 and 2 threads (and a k-quant recipe: its mixture of Q4_K and Q6_K). */
static void gptq_thread_invariance(void) {
    const char *gguf = f32_gguf();
    if (!gguf) return;
    char cmd[2048], *log = NULL;
    for (int t = 1; t <= 2; t++) {
        char out[32];
        snprintf(out, sizeof out, "gptq-t%d.gguf", t);
        snprintf(cmd, sizeof cmd, "gptq %s --calib %s --samples 4 --seqlen 64 --to gguf:Q4_K_M -o %s --threads %d --quiet --no-loss",
                 gguf, tl_asset(CALIB_TEXT), tl_tmp(out), t);
        CHECK(tl_run_smelt(cmd, &log) == 0);
        free(log);
    }
    size_t n1, n2;
    char *a = tl_slurp(tl_tmp("gptq-t1.gguf"), &n1), *b = tl_slurp(tl_tmp("gptq-t2.gguf"), &n2);
    CHECK_MSG(a && b && n1 == n2 && !memcmp(a, b, n1), "smelt gptq output depends on the thread count");
    free(a);
    free(b);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(tl_tmp("gptq-t1.gguf"), &g));
    if (g) { /* llama.cpp's Q4_K_M mixture for 4 layers: attn_v and ffn_down of layers 2, 3 in Q6_K */
        const char *const names[4] = {"blk.0.attn_v.weight", "blk.2.attn_v.weight", "blk.3.ffn_down.weight",
                                      "blk.1.ffn_down.weight"};
        const sm_type want[4] = {SM_TYPE_Q4_K, SM_TYPE_Q6_K, SM_TYPE_Q6_K, SM_TYPE_Q4_K};
        for (int i = 0; i < 4; i++) {
            const sm_tensor *t = sm_gguf_find_tensor(g, names[i]);
            CHECK_MSG(t && t->type == want[i], "%s", names[i]);
        }
        sm_gguf_close(g);
    }
}

static void gptq_cli_errors(void) {
    char cmd[2048], *log = NULL;
    /* no silent fallback to the CPU when the GPU cannot be used (test_gptq_cuda runs the GPU path) */
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to gguf:Q4_0 -o %s --device cuda", tl_asset(KJV_F32),
             tl_asset(CALIB_TEXT), tl_tmp("x.gguf"));
    CHECK(tl_run_smelt_env(TL_NO_GPU, cmd, &log) == 1 && strstr(log, "no usable CUDA device") &&
          access(tl_tmp("x.gguf"), F_OK) != 0);
    free(log);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to gguf:Q4_K_M --act-order -o %s", tl_asset(KJV_F32),
             tl_asset(CALIB_TEXT), tl_tmp("x.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 2 && strstr(log, "--act-order"));
    free(log);
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to awq -o %s", tl_asset(KJV_F32), tl_asset(CALIB_TEXT),
             tl_tmp("x.gguf"));
    CHECK(tl_run_smelt(cmd, &log) == 2 && strstr(log, "--to"));
    free(log);
    const char *gguf = f32_gguf();
    if (!gguf) return;
    snprintf(cmd, sizeof cmd, "gptq %s --calib %s --to hf -o %s", gguf, tl_asset(CALIB_TEXT), tl_tmp("x"));
    CHECK(tl_run_smelt(cmd, &log) == 1 && strstr(log, "Hugging Face model directory"));
    free(log);
}

void run_tests(void) {
    TEST(cut_random_deterministic);
    TEST(cut_in_order);
    TEST(tokenize_calib_text);
    TEST(block_eval_matches_forward);
    TEST(imatrix_properties);
    TEST(imatrix_cli);
    TEST(imatrix_vs_llamacpp);
    TEST(gptq_gguf_beats_rtn);
    TEST(gptq_lowbit_beats_rtn);
    TEST(gptq_hf_checkpoint);
    TEST(gptq_hf_to_gguf);
    TEST(gptq_thread_invariance);
    TEST(gptq_cli_errors);
    sm_model_free(g_model);
    free(g_calib);
}

/* test_moe_imatrix_collect.c - `smelt imatrix` on mixtures of experts (the tiny Mixtral and
 * Qwen3-MoE fixtures of tests/testlib.c, converted to F32 GGUF, on kjv text):
 *  - without llama.cpp: the per-expert entries of ffn_{gate,up,down}_exps are recomputed by a
 *    separate path in this file: the ffn_norm(x) of every token (the dense observer's router
 *    input), routed here in double precision from ffn_gate_inp's weights read from the GGUF
 *    (softmax, top-k), each chosen expert's silu(gate) * up computed here from its stacked
 *    weights; counts are the tokens routed to each expert and sum to k * tokens, the router's
 *    entry counts every token, and the gate/up sums over the experts are k times the router's;
 *  - with LLAMA_CPP_BIN: llama-imatrix on the same GGUF, text and context writes the same
 *    entries, the same per-expert counts, and sums within the dense comparison's tolerance
 *    (test_calib: 2e-3 relative; llama.cpp sums in float). llama-imatrix runs with an F32 KV
 *    cache and without flash attention (which rounds through F16): measured 2e-6 (Mixtral) and
 *    2e-4 (Qwen3-MoE, on sums of order 1e-6 of a nearly silent unit); with its defaults the F16
 *    rounding of the attention moves the sums by up to 0.13 relative there. */
#include "testlib.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "formats/formats.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CTX 64
#define CHUNKS 3
#define CALIB_TEXT "text/kjv-calib.txt"

typedef struct fixture {
    const char *name;
    const char *(*make)(void);
    char gguf[512];
} fixture;

static fixture FIX[2] = {{"mixtral", tl_make_mixtral_tiny, ""}, {"qwen3moe", tl_make_qwen3moe_tiny, ""}};

static const char *gguf_of(fixture *f) {
    if (f->gguf[0]) return f->gguf;
    const char *dir = f->make();
    if (!dir) {
        fprintf(stderr, "  (the fixture's tokenizer asset is missing)\n");
        exit(77);
    }
    char name[64];
    snprintf(name, sizeof name, "%s.gguf", f->name);
    snprintf(f->gguf, sizeof f->gguf, "%s", tl_tmp(name));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, f->gguf, &co, NULL));
    return f->gguf;
}

/* ---- the separate path: every layer's ffn_norm(x), then routing and experts done here ---- */

typedef struct grab {
    int64_t n_layer, E, n_tok; /* n_tok: the current chunk's */
    float *xn;                 /* [n_layer][E][CTX] of the current chunk */
} grab;

static int grab_ffn(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                    int64_t n_tok) {
    grab *g = user;
    if (which != SM_IN_FFN || layer < 0) return 0;
    if (cols != g->E || n_tok != CTX) return sm_error("unexpected shape");
    for (int64_t f = 0; f < cols; f++) memcpy(g->xn + (layer * g->E + f) * CTX, x + f * ld, sizeof(float) * CTX);
    return 0;
}

static const float *f32_tensor(const sm_gguf *g, const char *fmt, int64_t l, int64_t n) {
    char name[96];
    snprintf(name, sizeof name, fmt, (long long)l);
    const sm_tensor *t = sm_gguf_find_tensor(g, name);
    CHECK_MSG(t && t->type == SM_TYPE_F32 && sm_tensor_nelements(t) == n, "%s", name);
    return t && t->type == SM_TYPE_F32 && sm_tensor_nelements(t) == n ? (const float *)t->data : NULL;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

static const sm_imatrix_entry *entry(const sm_imatrix *im, const char *fmt, int64_t l) {
    char name[96];
    snprintf(name, sizeof name, fmt, (long long)l);
    for (size_t i = 0; i < im->n_entries; i++)
        if (!strcmp(im->entries[i].name, name)) return &im->entries[i];
    CHECK_MSG(0, "no entry %s", name);
    return NULL;
}

static void independent(fixture *f) {
    const char *path = gguf_of(f);
    sm_model *m = NULL;
    sm_gguf *g = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    CHECK_OK(sm_gguf_open(path, &g));
    if (!m || !g) goto out;
    const sm_hparams *hp = sm_model_hparams(m);
    const sm_tokenizer *tok;
    int32_t *toks = NULL;
    size_t n_toks = 0;
    CHECK_OK(sm_model_tokenizer(m, &tok));
    CHECK_OK(sm_calib_tokenize_file(tok, tl_asset(CALIB_TEXT), false, &toks, &n_toks));
    if (n_toks < CTX * CHUNKS) goto out;
    sm_imatrix im = {0};
    sm_imatrix_report rep;
    sm_imatrix_opts o = {.n_ctx = CTX, .n_chunks = CHUNKS, .bos_id = -1, .quiet = true, .no_ppl = true};
    CHECK_OK(sm_imatrix_compute(m, toks, (int64_t)n_toks, &o, &im, &rep));

    const int64_t NL = hp->n_layer, NE = hp->n_expert, K = hp->n_expert_used, E = hp->n_embd, F = hp->n_ff_exp;
    /* attention entries, the router and three stacks per layer */
    CHECK_MSG(im.n_entries == (size_t)(NL * 8), "%zu entries, want %lld", im.n_entries, (long long)(NL * 8));
    double *s_in = calloc((size_t)(NL * NE * E), sizeof(double)), *s_dn = calloc((size_t)(NL * NE * F), sizeof(double));
    int64_t *cnt = calloc((size_t)(NL * NE), sizeof(int64_t));
    grab gr = {NL, E, CTX, malloc(sizeof(float) * (size_t)(NL * E * CTX))};
    double *p = malloc(sizeof(double) * (size_t)NE), *h = malloc(sizeof(double) * (size_t)F);
    sm_context *ctx = NULL;
    CHECK_OK(sm_context_new(m, CTX, CTX, &ctx));
    CHECK_OK(sm_context_set_observer(ctx, grab_ffn, &gr));
    for (int64_t k = 0; k < CHUNKS && ctx; k++) {
        sm_context_clear(ctx);
        CHECK_OK(sm_model_eval(m, ctx, toks + k * CTX, CTX, 0, CTX, NULL));
        for (int64_t l = 0; l < NL; l++) {
            const float *wr = f32_tensor(g, "blk.%lld.ffn_gate_inp.weight", l, NE * E);
            const float *wg = f32_tensor(g, "blk.%lld.ffn_gate_exps.weight", l, NE * F * E);
            const float *wu = f32_tensor(g, "blk.%lld.ffn_up_exps.weight", l, NE * F * E);
            if (!wr || !wg || !wu) goto done;
            for (int64_t t = 0; t < CTX; t++) {
                const float *x = gr.xn + l * E * CTX + t; /* x[f * CTX] */
                double mx = -INFINITY;
                for (int64_t e = 0; e < NE; e++) {
                    double a = 0;
                    for (int64_t c = 0; c < E; c++) a += (double)wr[e * E + c] * x[c * CTX];
                    p[e] = a;
                    if (a > mx) mx = a;
                }
                for (int64_t e = 0; e < NE; e++) p[e] = exp(p[e] - mx); /* the order is softmax's */
                for (int64_t j = 0; j < K; j++) {
                    int64_t best = 0;
                    for (int64_t e = 1; e < NE; e++)
                        if (p[e] > p[best]) best = e;
                    p[best] = -1; /* taken */
                    cnt[l * NE + best]++;
                    for (int64_t c = 0; c < E; c++) s_in[(l * NE + best) * E + c] += (double)x[c * CTX] * x[c * CTX];
                    for (int64_t r = 0; r < F; r++) {
                        double a = 0, b = 0;
                        const float *rg = wg + (best * F + r) * E, *ru = wu + (best * F + r) * E;
                        for (int64_t c = 0; c < E; c++) a += (double)rg[c] * x[c * CTX], b += (double)ru[c] * x[c * CTX];
                        h[r] = a / (1 + exp(-a)) * b;
                        s_dn[(l * NE + best) * F + r] += h[r] * h[r];
                    }
                }
            }
        }
    }
    double worst_in = 0, worst_dn = 0, worst_k = 0;
    int64_t starved = 0;
    for (int64_t l = 0; l < NL; l++) {
        const sm_imatrix_entry *ge = entry(&im, "blk.%lld.ffn_gate_exps.weight", l),
                               *ue = entry(&im, "blk.%lld.ffn_up_exps.weight", l),
                               *de = entry(&im, "blk.%lld.ffn_down_exps.weight", l),
                               *re = entry(&im, "blk.%lld.ffn_gate_inp.weight", l);
        if (!ge || !ue || !de || !re) continue;
        CHECK(ge->n_mat == NE && ue->n_mat == NE && de->n_mat == NE && re->n_mat == 1);
        CHECK(ge->n_values == NE * E && de->n_values == NE * F && re->n_values == E);
        if (ge->n_mat != NE || de->n_values != NE * F || re->n_values != E) continue;
        CHECK_MSG(re->counts[0] == CTX * CHUNKS, "router count %lld", (long long)re->counts[0]);
        int64_t total = 0;
        for (int64_t e = 0; e < NE; e++) {
            CHECK_MSG(ge->counts[e] == cnt[l * NE + e] && ue->counts[e] == cnt[l * NE + e] &&
                          de->counts[e] == cnt[l * NE + e],
                      "blk.%lld expert %lld: count %lld, routed here %lld", (long long)l, (long long)e,
                      (long long)ge->counts[e], (long long)cnt[l * NE + e]);
            total += ge->counts[e];
            starved += ge->counts[e] == 0;
            for (int64_t c = 0; c < E; c++) {
                const double want = s_in[(l * NE + e) * E + c];
                if (want > 0) worst_in = fmax(worst_in, rel(ge->sums[e * E + c], want));
                CHECK(ge->sums[e * E + c] == ue->sums[e * E + c]);
            }
            for (int64_t r = 0; r < F; r++)
                if (s_dn[(l * NE + e) * F + r] > 0) worst_dn = fmax(worst_dn, rel(de->sums[e * F + r], s_dn[(l * NE + e) * F + r]));
        }
        CHECK_MSG(total == K * CTX * CHUNKS, "blk.%lld: %lld routed tokens, want %lld", (long long)l, (long long)total,
                  (long long)(K * CTX * CHUNKS));
        for (int64_t c = 0; c < E; c++) {
            double s = 0;
            for (int64_t e = 0; e < NE; e++) s += ge->sums[e * E + c];
            worst_k = fmax(worst_k, rel(s, (double)K * re->sums[c]));
        }
    }
    fprintf(stderr, "  %s: per-expert sums vs this test's routing: gate/up %.3g, down %.3g; sum over experts vs k x "
            "router %.3g; %lld expert(s) without tokens\n", f->name, worst_in, worst_dn, worst_k, (long long)starved);
    CHECK(worst_in < 1e-4 && worst_dn < 1e-4 && worst_k < 1e-5);
done:
    sm_context_free(ctx);
    free(gr.xn);
    free(s_in);
    free(s_dn);
    free(cnt);
    free(p);
    free(h);
    sm_imatrix_free(&im);
out:
    free(toks);
    sm_gguf_close(g);
    sm_model_free(m);
}

static void independent_mixtral(void) { independent(&FIX[0]); }
static void independent_qwen3moe(void) { independent(&FIX[1]); }

/* llama-imatrix and smelt imatrix on the same GGUF and text: same entries and counts, sums within
 * the dense comparison's tolerance */
static void vs_llamacpp(fixture *f) {
    const char *bin = tl_llama_cpp_bin("llama-imatrix's per-expert statistics");
    if (!bin) return;
    const char *path = gguf_of(f);
    char cmd[4096], lc[600], ours[600], *log = NULL;
    snprintf(lc, sizeof lc, "%s", tl_tmp("lc.gguf"));
    snprintf(ours, sizeof ours, "%s", tl_tmp("ours.gguf"));
    snprintf(cmd, sizeof cmd, "%s/llama-imatrix -m %s -f %s -c %d --chunks %d -t 2 --no-ppl -ctk f32 -ctv f32 -fa off -o %s > %s 2>&1", bin, path,
             tl_asset(CALIB_TEXT), CTX, CHUNKS, lc, tl_tmp("lc.log"));
    CHECK_MSG(system(cmd) == 0, "llama-imatrix (log %s)", tl_tmp("lc.log"));
    snprintf(cmd, sizeof cmd, "imatrix %s --text %s --ctx %d --chunks %d -o %s --quiet", path, tl_asset(CALIB_TEXT), CTX,
             CHUNKS, ours);
    CHECK(tl_run_smelt(cmd, &log) == 0);
    free(log);
    sm_imatrix a = {0}, b = {0};
    CHECK_OK(sm_imatrix_load(ours, &a));
    CHECK_OK(sm_imatrix_load(lc, &b));
    CHECK_MSG(a.n_entries == b.n_entries && a.chunk_count == b.chunk_count && a.chunk_size == b.chunk_size,
              "%zu vs %zu entries", a.n_entries, b.n_entries);
    double worst = 0;
    int64_t n_exp = 0;
    for (size_t i = 0; i < a.n_entries && i < b.n_entries; i++) {
        const sm_imatrix_entry *x = &a.entries[i], *y = &b.entries[i];
        CHECK_MSG(!strcmp(x->name, y->name) && x->n_mat == y->n_mat && x->n_values == y->n_values, "%s vs %s", x->name,
                  y->name);
        if (strcmp(x->name, y->name) || x->n_mat != y->n_mat || x->n_values != y->n_values) continue;
        if (x->n_mat > 1) n_exp++;
        for (int64_t e = 0; e < x->n_mat; e++)
            CHECK_MSG(x->counts[e] == y->counts[e], "%s expert %lld: count %lld, llama-imatrix %lld", x->name,
                      (long long)e, (long long)x->counts[e], (long long)y->counts[e]);
        for (int64_t j = 0; j < x->n_values; j++)
            if (y->sums[j] != 0 || x->sums[j] != 0) worst = fmax(worst, rel(x->sums[j], y->sums[j]));
    }
    fprintf(stderr, "  %s: llama-imatrix vs smelt imatrix: %zu entries (%lld per-expert), max relative difference %.3g\n",
            f->name, a.n_entries, (long long)n_exp, worst);
    CHECK(n_exp == 3 * QW_LAYERS);
    CHECK(worst < 2e-3);
    sm_imatrix_free(&a);
    sm_imatrix_free(&b);
}

static void llamacpp_mixtral(void) { vs_llamacpp(&FIX[0]); }
static void llamacpp_qwen3moe(void) { vs_llamacpp(&FIX[1]); }

void run_tests(void) {
    TEST(independent_mixtral);
    TEST(independent_qwen3moe);
    TEST(llamacpp_mixtral);
    TEST(llamacpp_qwen3moe);
}

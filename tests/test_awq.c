/* test_awq.c - AWQ (calib/awq.c, sm_gptq_run with opts.awq):
 *
 *  (i)   the scale search: its alpha-0 loss equals the output error of round-to-nearest computed
 *        here directly from the samples (sum over tokens of ||(W - Q) x||^2), its chosen scales
 *        give the loss it reports when recomputed here the same way, and on inputs with outlier
 *        channels it picks alpha > 0 with a lower loss than alpha 0, per-linear target types
 *        (Q4_0 and Q4_K in one group);
 *  (ii)  the clip search never raises the output error (Q4_0: blocks are independent) and only
 *        shrinks weights; AutoAWQ's integer grid (scale, zero point, codes) on two hand-made groups;
 *  (iii) folding: `smelt awq --to gguf:F32 --awq-alpha 0.5 --no-clip` (scales but no rounding)
 *        writes a model whose logits equal the source model's as the runtime evaluates it,
 *        while its norms and linears did change: on tiny-llama-kjv made multi-head (every kv
 *        head repeated for its query heads, an independent transformation with the same
 *        function, so that v -> o is folded too) and on the Qwen2 (q/k/v biases), Qwen3 (per-head
 *        q/k norms, attention width unlike the hidden size), Phi-3 (fused
 *        q/k/v and gate/up) and Gemma 2 (pre/post norms, 1 + w norms) test models. */
#include "testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_gauss(uint64_t *s) {
    const double u = ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53, v = ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

enum { NTOK = 384, COLS = 256, ROWS = 48 };

/* inputs with a few outlier channels (x20), as LLM activations have */
static float *make_x(uint64_t seed) {
    uint64_t s = seed;
    float *x = malloc(sizeof(float) * NTOK * COLS);
    for (int t = 0; t < NTOK; t++)
        for (int c = 0; c < COLS; c++) x[t * COLS + c] = (float)(rng_gauss(&s) * (c % 37 == 5 ? 20.0 : 1.0));
    return x;
}
static float *make_w(int rows, uint64_t seed) {
    uint64_t s = seed;
    float *w = malloc(sizeof(float) * (size_t)(rows * COLS));
    for (int i = 0; i < rows * COLS; i++) w[i] = (float)(0.05 * rng_gauss(&s));
    return w;
}

/* sum over tokens of ||(W - Q) x||^2, straight from the samples */
static double direct_loss(const float *x, const float *W, const float *Q, int rows) {
    double tot = 0;
    for (int t = 0; t < NTOK; t++)
        for (int r = 0; r < rows; r++) {
            double acc = 0;
            for (int c = 0; c < COLS; c++) acc += ((double)W[r * COLS + c] - Q[r * COLS + c]) * x[t * COLS + c];
            tot += acc * acc;
        }
    return tot;
}

/* W scaled by s, rounded in `type` with importance diag(H)/s^2, scaled back */
static void scaled_rtn(sm_type type, const float *W, int rows, const float *s, const double *H, float *out) {
    float *ws = malloc(sizeof(float) * (size_t)(rows * COLS)), imp[COLS];
    for (int c = 0; c < COLS; c++) imp[c] = (float)(H[c * COLS + c] / ((double)s[c] * s[c]));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < COLS; c++) ws[r * COLS + c] = W[r * COLS + c] * s[c];
    const uint64_t rb = sm_type_row_bytes(type, COLS);
    char *q = malloc((size_t)(rb * (uint64_t)rows));
    CHECK(sm_quantize_rows(type, ws, q, rows, COLS, imp) > 0);
    for (int r = 0; r < rows; r++) {
        CHECK_OK(sm_dequantize_row(type, q + (uint64_t)r * rb, out + r * COLS, COLS));
        for (int c = 0; c < COLS; c++) out[r * COLS + c] /= s[c];
    }
    free(ws);
    free(q);
}

static void hessian_and_mean(const float *x, double *H, double *xmean) {
    memset(H, 0, sizeof(double) * COLS * COLS);
    memset(xmean, 0, sizeof(double) * COLS);
    for (int t = 0; t < NTOK; t++)
        for (int a = 0; a < COLS; a++) {
            xmean[a] += fabs(x[t * COLS + a]) / NTOK;
            for (int b = 0; b < COLS; b++) H[a * COLS + b] += (double)x[t * COLS + a] * x[t * COLS + b];
        }
}

static void test_scale_search(void) {
    float *x = make_x(1), *w0 = make_w(ROWS, 2), *w1 = make_w(ROWS / 2, 3);
    double *H = malloc(sizeof(double) * COLS * COLS), xmean[COLS];
    hessian_and_mean(x, H, xmean);
    sm_awq_opts o;
    sm_awq_opts_default(&o);
    sm_awq_group g = {.n = 2, .W = {w0, w1}, .rows = {ROWS, ROWS / 2}, .type = {SM_TYPE_Q4_0, SM_TYPE_Q4_K}};
    float s[COLS], ones[COLS], *q = malloc(sizeof(float) * ROWS * COLS);
    sm_awq_search_report rep;
    CHECK_OK(sm_awq_search_scale(H, xmean, COLS, &g, &o, s, &rep));
    for (int c = 0; c < COLS; c++) ones[c] = 1.0f;
    /* alpha 0: plain weighted round-to-nearest */
    double l0 = 0, lb = 0;
    for (int k = 0; k < 2; k++) {
        scaled_rtn(g.type[k], g.W[k], (int)g.rows[k], ones, H, q);
        const double d = direct_loss(x, g.W[k], q, (int)g.rows[k]);
        CHECK_NEAR(rep.loss_lin_alpha0[k], d, 1e-6 * d);
        l0 += d;
    }
    CHECK_NEAR(rep.loss_alpha0, l0, 1e-6 * l0);
    /* the chosen scales, recomputed here */
    float s2[COLS];
    double mx = 0, mn = INFINITY;
    for (int c = 0; c < COLS; c++) {
        double v = pow(xmean[c], rep.alpha);
        if (v < 1e-4) v = 1e-4;
        s2[c] = (float)v;
        mx = fmax(mx, v);
        mn = fmin(mn, v);
    }
    for (int c = 0; c < COLS; c++) {
        s2[c] = (float)(s2[c] / sqrt(mx * mn));
        CHECK_NEAR(s2[c], s[c], 1e-6 * fabs(s[c]));
    }
    for (int k = 0; k < 2; k++) {
        scaled_rtn(g.type[k], g.W[k], (int)g.rows[k], s, H, q);
        lb += direct_loss(x, g.W[k], q, (int)g.rows[k]);
    }
    CHECK_NEAR(rep.loss, lb, 1e-6 * lb);
    CHECK_MSG(rep.alpha > 0 && rep.loss < 0.98 * rep.loss_alpha0, "alpha %g loss %g vs alpha 0 %g", rep.alpha, rep.loss,
              rep.loss_alpha0);
    /* forced alpha: one point, that alpha */
    o.force_alpha = 0.25;
    CHECK_OK(sm_awq_search_scale(H, xmean, COLS, &g, &o, s, &rep));
    CHECK_NEAR(rep.alpha, 0.25, 0);
    free(x);
    free(w0);
    free(w1);
    free(H);
    free(q);
}

static void test_clip(void) {
    float *x = make_x(4), *w = make_w(ROWS, 5);
    uint64_t st = 9;
    for (int i = 0; i < 40; i++) w[(rng_next(&st) % (ROWS * COLS))] *= 8.0f; /* a few weight outliers */
    double *H = malloc(sizeof(double) * COLS * COLS), xmean[COLS];
    hessian_and_mean(x, H, xmean);
    float *wc = malloc(sizeof(float) * ROWS * COLS), *q = malloc(sizeof(float) * ROWS * COLS), ones[COLS];
    for (int c = 0; c < COLS; c++) ones[c] = 1.0f;
    memcpy(wc, w, sizeof(float) * ROWS * COLS);
    sm_awq_opts o;
    sm_awq_opts_default(&o);
    CHECK_OK(sm_awq_clip(H, COLS, wc, ROWS, SM_TYPE_Q4_0, &o));
    int changed = 0;
    for (int i = 0; i < ROWS * COLS; i++) {
        CHECK(fabsf(wc[i]) <= fabsf(w[i]));
        changed += wc[i] != w[i];
    }
    CHECK(changed > 0);
    scaled_rtn(SM_TYPE_Q4_0, w, ROWS, ones, H, q);
    const double before = direct_loss(x, w, q, ROWS);
    scaled_rtn(SM_TYPE_Q4_0, wc, ROWS, ones, H, q);
    const double after = direct_loss(x, w, q, ROWS);
    CHECK_MSG(after < before, "clipped %g, unclipped %g", after, before);
    free(x);
    free(w);
    free(wc);
    free(q);
    free(H);
}

/* ---- folding ---- */

/* AutoAWQ's asymmetric grid (sm_awq_int_quant): a row of two 128-groups, the first spanning
 * [-0.5, 1.5] (scale f16(2/15), zero round(0.5 / scale) = 4, codes 0..15, every value within half
 * a step), the second all positive (zero clamped to 0: codes from round(min / scale)). */
static void test_int_grid(void) {
    enum { C = 256 };
    float w[C], deq[C];
    uint8_t codes[C];
    uint16_t sc[2];
    int32_t zr[2];
    for (int c = 0; c < 128; c++) w[c] = -0.5f + (float)c * (2.0f / 127.0f);
    for (int c = 0; c < 128; c++) w[128 + c] = 1.0f + (float)c / 127.0f;
    CHECK_OK(sm_awq_int_quant(w, 1, C, 4, 128, deq, codes, sc, zr));
    CHECK(sc[0] == sm_f32_to_f16(2.0f / 15.0f));
    CHECK(zr[0] == 4);
    CHECK(codes[0] == 0 && codes[127] == 15);
    const float s1 = sm_f16_to_f32(sc[1]);
    CHECK(sc[1] == sm_f32_to_f16(1.0f / 15.0f) && zr[1] == 0);
    CHECK(codes[128] == (uint8_t)lroundf(1.0f / s1) && codes[255] == 15);
    for (int c = 0; c < C; c++) {
        const int g = c / 128;
        const float sg = sm_f16_to_f32(sc[g]);
        CHECK(deq[c] == sg * (float)(codes[c] - zr[g]));
        if (c < 128) CHECK(fabsf(deq[c] - w[c]) <= 0.5f * sg * 1.0001f);
    }
    /* one group per row (-1) and a width the group does not divide */
    CHECK_OK(sm_awq_int_quant(w, 1, C, 4, -1, deq, NULL, NULL, NULL));
    CHECK(sm_awq_int_quant(w, 1, C, 4, 96, deq, NULL, NULL, NULL) != 0);
    sm_clear_error();
}

static const char *calib(void) { return tl_asset("text/kjv-calib.txt"); }

/* src (an F32 GGUF with grouped-query attention) rewritten with every kv head repeated for
 * the query heads that read it (query head h reads kv head h / (n_head / n_head_kv), in ggml as
 * in transformers' repeat_kv): the same function, multi-head. */
static int make_mha(const char *src, const char *dst) {
    sm_gguf *g = NULL;
    if (sm_gguf_open(src, &g)) return -1;
    const char *arch = sm_gguf_get_str(g, "general.architecture");
    char key[128];
    int64_t nh = 0, nkv = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    sm_gguf_get_i64(g, key, &nh);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    sm_gguf_get_i64(g, key, &nkv);
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (size_t i = 0; i < sm_gguf_n_kv(g); i++) sm_meta_set_val(sm_gguf_writer_meta(w), sm_gguf_key(g, i), sm_gguf_val(g, i));
    sm_meta_set_u32(sm_gguf_writer_meta(w), key, (uint32_t)nh);
    const int64_t rep = nkv > 0 ? nh / nkv : 1;
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        int64_t shape[SM_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (strstr(t->name, "attn_k.") || strstr(t->name, "attn_v.")) shape[0] *= rep;
        sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, shape);
    }
    int rc = sm_gguf_writer_begin(w, dst);
    for (size_t i = 0; i < sm_gguf_n_tensors(g) && !rc; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        if (t->type != SM_TYPE_F32) rc = -1;
        else if (strstr(t->name, "attn_k.") || strstr(t->name, "attn_v.")) {
            const int64_t row = sm_tensor_row_len(t), per_head = sm_tensor_nrows(t) / nkv * row;
            for (int64_t h = 0; h < nh && !rc; h++)
                rc = sm_gguf_writer_write(w, (const float *)t->data + (h / rep) * per_head, sizeof(float) * (uint64_t)per_head);
        } else {
            rc = sm_gguf_writer_write(w, t->data, t->nbytes);
        }
    }
    if (!rc) rc = sm_gguf_writer_finish(w);
    else sm_gguf_writer_abort(w);
    sm_gguf_close(g);
    return rc;
}

static float *logits_of(const char *path, int32_t n_tok, int64_t *n_vocab) {
    sm_model *m = NULL;
    sm_context *c = NULL;
    if (sm_model_load(path, NULL, &m) || sm_context_new(m, 64, 64, &c)) {
        fprintf(stderr, "%s: %s\n", path, sm_last_error());
        sm_model_free(m);
        return NULL;
    }
    *n_vocab = sm_model_hparams(m)->n_vocab;
    int32_t toks[64];
    for (int i = 0; i < n_tok; i++) toks[i] = (int32_t)(1 + (i * 37) % 500); /* every vocabulary here has > 500 */
    float *l = malloc(sizeof(float) * (size_t)(n_tok * *n_vocab));
    if (sm_model_eval(m, c, toks, n_tok, 0, 0, l)) {
        free(l);
        l = NULL;
    }
    sm_context_free(c);
    sm_model_free(m);
    return l;
}

/* the largest relative change of a tensor's values between two GGUFs */
static double tensor_change(const char *a, const char *b, const char *name) {
    sm_gguf *ga = NULL, *gb = NULL;
    double d = -1;
    if (!sm_gguf_open(a, &ga) && !sm_gguf_open(b, &gb)) {
        const sm_tensor *ta = sm_gguf_find_tensor(ga, name), *tb = sm_gguf_find_tensor(gb, name);
        if (ta && tb && ta->type == SM_TYPE_F32 && tb->type == SM_TYPE_F32 && ta->nbytes == tb->nbytes) {
            d = 0;
            for (int64_t i = 0; i < sm_tensor_nelements(ta); i++) {
                const double x = ((const float *)ta->data)[i], y = ((const float *)tb->data)[i];
                d = fmax(d, fabs(x - y) / (fabs(x) + 1e-6));
            }
        }
    }
    sm_gguf_close(ga);
    sm_gguf_close(gb);
    return d;
}

/* `smelt awq SRC --to gguf:F32` with alpha 0.5 computes the same logits as REF */
static void check_fold(const char *label, const char *ref, const char *src, bool expect_v_fold) {
    char args[8192], out_path[1024], r[1024], s[1024], cal[1024], *out = NULL;
    snprintf(r, sizeof r, "%s", ref);
    snprintf(s, sizeof s, "%s", src);
    snprintf(cal, sizeof cal, "%s", calib());
    snprintf(out_path, sizeof out_path, "%s", tl_tmp("folded.gguf"));
    remove(out_path);
    snprintf(args, sizeof args,
             "awq '%s' --calib '%s' --to gguf:F32 --awq-alpha 0.5 --no-clip --samples 4 --seqlen 32 -o '%s' --json", s,
             cal, out_path);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "%s: awq failed: %s", label, out ? out : "");
    CHECK_MSG(out && strstr(out, expect_v_fold ? "\"awq_alpha\":[0.5,0.5,0.5,0.5]" : "\"awq_alpha\":[0.5,null,0.5,0.5]"),
              "%s: alphas: %s", label, out ? out : "");
    free(out);
    int64_t nv = 0, nv2 = 0;
    float *a = logits_of(r, 24, &nv), *b = logits_of(out_path, 24, &nv2);
    CHECK_MSG(a && b && nv == nv2, "%s: logits", label);
    if (a && b && nv == nv2) {
        double md = 0, mx = 0;
        for (int64_t i = 0; i < 24 * nv; i++) {
            md = fmax(md, fabs((double)a[i] - b[i]));
            mx = fmax(mx, fabs((double)a[i]));
        }
        CHECK_MSG(md <= 2e-4 * (mx + 1), "%s: folded model's logits differ by %g (largest %g)", label, md, mx);
    }
    free(a);
    free(b);
    if (strstr(src, ".gguf")) { /* the folding did change the tensors */
        CHECK_MSG(tensor_change(src, out_path, "blk.0.attn_norm.weight") > 0.05, "%s: attn_norm unchanged", label);
        CHECK_MSG(tensor_change(src, out_path, "blk.0.ffn_norm.weight") > 0.05, "%s: ffn_norm unchanged", label);
        CHECK_MSG(tensor_change(src, out_path, "blk.0.ffn_down.weight") > 0.05, "%s: ffn_down unchanged", label);
        CHECK_MSG((tensor_change(src, out_path, "blk.0.attn_output.weight") > 0.05) == expect_v_fold,
                  "%s: attn_output scaled: expected %d", label, expect_v_fold);
    }
}

static void test_fold_kjv(void) {
    char args[4096], f32[1024], mha[1024], *out = NULL;
    snprintf(f32, sizeof f32, "%s", tl_tmp("kjv-f32.gguf"));
    snprintf(mha, sizeof mha, "%s", tl_tmp("kjv-mha.gguf"));
    snprintf(args, sizeof args, "convert '%s' --outtype f32 -o '%s' --quiet", tl_asset("models/tiny-llama-kjv/f32"), f32);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "convert: %s", out ? out : "");
    free(out);
    CHECK_OK(make_mha(f32, mha));
    /* the multi-head copy is the same function (checks make_mha itself) */
    int64_t nv = 0, nv2 = 0;
    float *a = logits_of(f32, 24, &nv), *b = logits_of(mha, 24, &nv2);
    CHECK(a && b && nv == nv2);
    double md = 0;
    for (int64_t i = 0; a && b && i < 24 * nv; i++) md = fmax(md, fabs((double)a[i] - b[i]));
    CHECK_MSG(md < 1e-4, "multi-head copy differs by %g", md);
    free(a);
    free(b);
    check_fold("kjv (grouped-query)", f32, f32, false);
    check_fold("kjv (multi-head)", f32, mha, true);
}

static void test_fold_archs(void) {
    const char *d;
    if ((d = tl_make_qwen2_tiny())) check_fold("qwen2", d, d, false);
    if ((d = tl_make_qwen3_tiny(false))) check_fold("qwen3", d, d, false);
    if ((d = tl_make_phi3_tiny())) check_fold("phi3", d, d, false);
    if ((d = tl_make_gemma2_tiny())) check_fold("gemma2", d, d, false);
}

void run_tests(void) {
    TEST(test_scale_search);
    TEST(test_clip);
    TEST(test_int_grid);
    TEST(test_fold_kjv);
    TEST(test_fold_archs);
}

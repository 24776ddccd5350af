/* arch_testlib.c - the shared half of the architecture tests (see arch_testlib.h). */
#include "arch_testlib.h"

#include "convert/convert.h"
#include "model/model.h"
#include "quantize/quantize.h"
#include "release/release.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ta_tokens(const ta_arch *a, int32_t *toks) {
    toks[0] = 1;
    for (int i = 1; i < TA_T; i++) toks[i] = (i * 37 + 11) % a->n_vocab;
}

double ta_ppl(const ta_arch *a, const float *logits, const int32_t *toks) { return ta_ppl_n(logits, toks, TA_T, a->n_vocab); }

double ta_ppl_n(const float *logits, const int32_t *toks, int n, int V) {
    double nll = 0;
    for (int i = 0; i + 1 < n; i++) {
        const float *row = logits + (size_t)i * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
        nll += mx + log(s) - row[toks[i + 1]];
    }
    return exp(nll / (n - 1));
}

float *ta_eval(const ta_arch *a, const char *path) {
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(path, NULL, &m));
    if (!m) return NULL;
    int32_t toks[TA_T];
    ta_tokens(a, toks);
    float *logits = malloc(sizeof(float) * TA_T * (size_t)a->n_vocab);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 64, 7, &c)); /* batches of 7: the cache (and any window) across batches */
    if (c && sm_model_eval(m, c, toks, TA_T, 0, 0, logits)) {
        CHECK_MSG(0, "eval %s: %s", path, sm_last_error());
        free(logits);
        logits = NULL;
    }
    const sm_arch_info *ai = sm_arch_by_gguf(sm_model_hparams(m)->arch); /* GGUF llama (Mixtral): ggml's rope */
    CHECK(sm_model_rope(m) == SM_ROPE_NEOX || (ai && ai->gguf_rope == SM_ROPE_NORM));
    sm_context_free(c);
    sm_model_free(m);
    return logits;
}

float *ta_reference(const ta_arch *a, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/%s", getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..", rel);
    const size_t want = sizeof(float) * TA_T * (size_t)a->n_vocab;
    size_t len = 0;
    float *ref = (float *)tl_slurp(p, &len);
    CHECK_MSG(ref && len == want, "%s: missing or wrong size", p);
    if (ref && len != want) {
        free(ref);
        ref = NULL;
    }
    return ref;
}

void ta_against_torch(const ta_arch *a, const char *what, const float *logits, const float *ref) {
    if (!logits || !ref) return;
    int32_t toks[TA_T];
    ta_tokens(a, toks);
    double worst = 0, big = 1;
    for (size_t i = 0; i < (size_t)TA_T * (size_t)a->n_vocab; i++) {
        worst = fmax(worst, fabs((double)logits[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    const double p = ta_ppl(a, logits, toks), pr = ta_ppl(a, ref, toks);
    fprintf(stderr, "  %s %s: max |logit - torch| = %.3g (largest %.3g), ppl %.6f vs torch %.6f\n", a->name, what,
            worst, big, p, pr);
    CHECK_MSG(worst <= 1e-4 * big, "%s: logits differ from torch by %g", what, worst);
    CHECK_MSG(fabs(p - pr) <= 1e-5 * pr, "%s: ppl %.9g vs torch %.9g", what, p, pr);
}

double ta_drift(const ta_arch *a, const float *l, const float *base) {
    if (!l || !base) return INFINITY;
    double worst = 0, big = 0;
    for (size_t i = 0; i < (size_t)TA_T * (size_t)a->n_vocab; i++) {
        worst = fmax(worst, fabs((double)l[i] - base[i]));
        big = fmax(big, fabs(base[i]));
    }
    return big > 0 ? worst / big : worst;
}

void ta_hf_and_gguf(const ta_arch *a, const char *dir, const float *ref, const char *gguf_name, const char *label) {
    char what[128];
    float *l = ta_eval(a, dir);
    snprintf(what, sizeof what, "HF%s", label);
    ta_against_torch(a, what, l, ref);
    free(l);
    const char *gguf = tl_tmp(gguf_name);
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, gguf, &co, NULL));
    a->check_gguf(gguf, true);
    l = ta_eval(a, gguf);
    snprintf(what, sizeof what, "GGUF f32%s", label);
    ta_against_torch(a, what, l, ref);
    free(l);
}

void ta_check_u32(const sm_gguf *g, const char *key, uint64_t want) {
    uint64_t v = 0;
    CHECK_MSG(sm_gguf_get_u64(g, key, &v) == 0 && v == want, "%s: %llu, expected %llu", key, (unsigned long long)v,
              (unsigned long long)want);
}

void ta_check_f32(const sm_gguf *g, const char *key, double want) {
    double v = 0;
    const sm_gguf_value *kv = sm_gguf_find(g, key);
    CHECK_MSG(kv && kv->type == SM_GGUF_FLOAT32 && sm_gguf_get_f64(g, key, &v) == 0 && v == want,
              "%s: %g, expected f32 %g", key, v, want);
}

void ta_check_key_order(const sm_gguf *g, const char *const *keys, const uint64_t *vals, size_t n, bool f32) {
    int64_t prev = -1;
    for (size_t i = 0; i < n; i++) {
        int64_t at = -1;
        for (size_t k = 0; k < sm_gguf_n_kv(g); k++)
            if (!strcmp(sm_gguf_key(g, k), keys[i])) at = (int64_t)k;
        /* llama-quantize moves general.file_type to the end (gguf_set_val_u32 removes, then appends) */
        const bool moved = !f32 && !strcmp(keys[i], "general.file_type");
        CHECK_MSG(moved ? at >= 0 : at > prev, "%s: missing or out of llama.cpp's order", keys[i]);
        if (!moved) prev = at;
        if (vals && vals[i]) ta_check_u32(g, keys[i], vals[i]);
    }
}

void ta_check_tensor_order(const sm_gguf *g, const char *const *order, size_t n) {
    for (size_t i = 0; i < n && i < sm_gguf_n_tensors(g); i++)
        CHECK_MSG(!strcmp(sm_gguf_tensor(g, i)->name, order[i]), "tensor %zu: %s, llama.cpp writes %s", i,
                  sm_gguf_tensor(g, i)->name, order[i]);
}

void ta_smelt_ok(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *out = NULL;
    CHECK_MSG(tl_run_smelt(cmd, &out) == 0, "%s: %s", cmd, out ? out : "");
    free(out);
}

double ta_smelt_ppl(const char *model) {
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "ppl %s --text %s --ctx 64 --chunks 4 --json", model, tl_asset(TA_CALIB_TEXT));
    const int rc = tl_run_smelt(cmd, &out);
    CHECK_MSG(rc == 0, "%s: %s", cmd, out ? out : "");
    const char *p = out ? strstr(out, "\"ppl\":") : NULL;
    const double v = p ? strtod(p + 6, NULL) : 0;
    free(out);
    return v;
}

void ta_cli_ppl(const ta_arch *a) {
    const char *dir = a->make();
    if (!dir) return;
    char gguf[1024], name[128]; /* tl_tmp's buffers are reused */
    snprintf(name, sizeof name, "%s-cli.gguf", a->name);
    snprintf(gguf, sizeof gguf, "%s", tl_tmp(name));
    ta_smelt_ok("convert %s -o %s --outtype f32 --quiet", dir, gguf);
    const double hf = ta_smelt_ppl(dir), gg = ta_smelt_ppl(gguf);
    fprintf(stderr, "  smelt ppl: HF %.6f, GGUF %.6f\n", hf, gg);
    CHECK(hf > 1 && fabs(hf - gg) <= 1e-6 * hf);
}

/* The fixture's F32 GGUF at tl_tmp("NAME-q-src.gguf") (path in a static buffer), or NULL. */
static const char *f32_gguf(const ta_arch *a) {
    static char path[1024];
    const char *dir = a->make();
    if (!dir) return NULL;
    char name[128];
    snprintf(name, sizeof name, "%s-q-src.gguf", a->name);
    snprintf(path, sizeof path, "%s", tl_tmp(name));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, path, &co, NULL));
    return path;
}

void ta_quantize(const ta_arch *a) {
    const char *f32 = f32_gguf(a);
    if (!f32) return;
    float *base = ta_eval(a, f32);
    static const char *const RECIPES[] = {"Q8_0", "Q4_K_M"};
    for (size_t r = 0; r < 2 && base; r++) {
        char name[128];
        snprintf(name, sizeof name, "%s-%s.gguf", a->name, RECIPES[r]);
        const char *q = tl_tmp(name);
        sm_quantize_opts qo = {.recipe = RECIPES[r], .quiet = true};
        sm_quantize_report qr;
        CHECK_OK(sm_quantize_gguf(f32, q, &qo, &qr));
        a->check_gguf(q, false);
        float *l = ta_eval(a, q);
        const double d = ta_drift(a, l, base);
        fprintf(stderr, "  %s %s: max |logit - f32| = %.3g of the largest\n", a->name, RECIPES[r], d);
        CHECK(d < (r == 0 ? a->q8_tol : a->q4_tol));
        free(l);
    }
    free(base);
}

void ta_calibration(const ta_arch *a) {
    const char *dir = a->make(), *src = f32_gguf(a);
    char f32[1024], imat[1024], name[128];
    if (!dir || !src) return;
    snprintf(f32, sizeof f32, "%s", src);
    snprintf(name, sizeof name, "%s.imatrix", a->name);
    snprintf(imat, sizeof imat, "%s", tl_tmp(name));
    ta_smelt_ok("imatrix %s --text %s -o %s --ctx 64 --chunks 4", dir, tl_asset(TA_CALIB_TEXT), imat);
    snprintf(name, sizeof name, "%s-imat.gguf", a->name);
    ta_smelt_ok("quantize %s %s Q4_K_M --imatrix %s", f32, tl_tmp(name), imat);
    snprintf(name, sizeof name, "%s-gptq.gguf", a->name);
    ta_smelt_ok("gptq %s --calib %s --samples 4 --seqlen 64 --to gguf:Q4_0 -o %s", dir, tl_asset(TA_CALIB_TEXT),
                tl_tmp(name));
    a->check_gguf(tl_tmp(name), false);
    free(ta_eval(a, tl_tmp(name)));
}

const char *ta_copy_without(const ta_arch *a, const char *name, const char *drop) {
    const char *dir = a->make();
    if (!dir) return NULL;
    static char bad[1024];
    snprintf(bad, sizeof bad, "%s", tl_tmp(name));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm '%s/model.safetensors'", bad, dir, bad, bad);
    CHECK(system(cmd) == 0);
    sm_ckpt *c = NULL;
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    CHECK_OK(sm_ckpt_open(st, &c));
    if (!c) return NULL;
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
    return bad;
}

void ta_refused_config(const ta_arch *a, const char *name, const char *sed, const char *msg) {
    const char *dir = a->make();
    if (!dir) return;
    char bad[1024], cmd[4096];
    snprintf(bad, sizeof bad, "%s", tl_tmp(name));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && sed -i '%s' '%s/config.json'", bad, dir, bad, sed, bad);
    CHECK(system(cmd) == 0);
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    char out[1200];
    snprintf(out, sizeof out, "%s.gguf", bad);
    CHECK_FAILS_WITH(sm_convert(bad, out, &co, NULL), msg);
    sm_model *m = NULL;
    CHECK_FAILS_WITH(sm_model_load(bad, NULL, &m), msg);
}

void ta_llama_cpp(const ta_arch *a, const char *const *recipes, size_t n_recipes) {
    char what[128];
    snprintf(what, sizeof what, "llama-quantize / llama-perplexity on the %s GGUF", a->name);
    const char *dir = a->make();
    const char *bin = tl_llama_cpp_bin(what);
    if (!dir || !bin) return;
    char src[1024], name[128]; /* tl_tmp's buffers are reused */
    snprintf(name, sizeof name, "%s-lc.gguf", a->name);
    snprintf(src, sizeof src, "%s", tl_tmp(name));
    sm_convert_opts co = {.outtype = "f32", .quiet = true};
    CHECK_OK(sm_convert(dir, src, &co, NULL));
    tl_same_as_llama_quantize(bin, src, recipes, n_recipes);
    const double lp = tl_llama_ppl(bin, src, tl_asset(TA_CALIB_TEXT), 64, 4);
    const double sp = ta_smelt_ppl(src);
    fprintf(stderr, "  ppl: smelt %.4f, llama-perplexity %.4f\n", sp, lp);
    CHECK(sp > 1 && lp > 1 && fabs(sp - lp) <= 0.005 * lp);
}

void ta_help_lists_archs(const char *arch) {
    char *out = NULL;
    CHECK(tl_run_smelt("help convert", &out) == 0);
    char list[1024];
    snprintf(list, sizeof list, "%s", sm_supported_archs());
    for (char *tok = strtok(list, ", "); tok; tok = strtok(NULL, ", ")) {
        CHECK_MSG(out && strstr(out, tok), "smelt help convert does not list %s", tok);
        CHECK_MSG(sm_arch_by_hf(tok) != NULL, "%s is listed but not in the table", tok);
    }
    CHECK(strstr(sm_supported_archs(), arch) != NULL);
    free(out);
}

const char *ta_edit_config(const char *dir, const char *name, const char *sed, char out[1024]) {
    snprintf(out, 1024, "%s", tl_tmp(name));
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && sed -i '%s' '%s/config.json'", out, dir, out, sed, out);
    return system(cmd) == 0 ? out : NULL;
}

/* ---- mixtures of experts ---- */

void ta_same_as_converter(const char *gguf, uint64_t from, const char *sha256) {
    size_t len = 0;
    uint8_t *b = (uint8_t *)tl_slurp(gguf, &len);
    CHECK(b && from <= len);
    if (!b || from > len) {
        free(b);
        return;
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.part", gguf);
    CHECK(tl_write_file(tmp, b + from, len - from) == 0);
    free(b);
    sm_file_hashes h;
    CHECK_OK(sm_hash_file(tmp, &h));
    CHECK_MSG(!strcmp(h.sha256, sha256), "%s from byte %llu: sha256 %s, llama.cpp's converter wrote %s", gguf,
              (unsigned long long)from, h.sha256, sha256);
}

typedef struct moe_seen {
    const sm_hparams *hp;
    float *ffn_in;     /* the layer's SM_IN_FFN batch as the ordinary observer saw it */
    int64_t ffn_ld, ffn_n, layer;
    int64_t routed[2]; /* per which: tokens routed (SM_IN_FFN, SM_IN_FFN_DOWN), this layer */
    double *wsum;      /* per token: the sum of its routing weights */
    int bad, downs;
} moe_seen;

static int moe_obs(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld, int64_t cols,
                   int64_t n) {
    moe_seen *s = user;
    if (which == SM_IN_FFN_DOWN) s->downs++;
    if (which != SM_IN_FFN || layer != s->layer) return 0;
    s->ffn_ld = ld;
    s->ffn_n = n;
    for (int64_t f = 0; f < cols; f++) memcpy(s->ffn_in + f * n, x + f * ld, sizeof(float) * (size_t)n);
    return 0;
}

static int moe_eobs(void *user, int64_t layer, int64_t expert, sm_linear_input which, const float *x, int64_t ld,
                    int64_t cols, int64_t n, const int32_t *tok, const float *w) {
    moe_seen *s = user;
    if (layer != s->layer) return 0;
    s->routed[which == SM_IN_FFN_DOWN] += n;
    const int64_t want = which == SM_IN_FFN ? s->hp->n_embd : s->hp->n_ff_exp;
    if (cols != want || expert < 0 || expert >= s->hp->n_expert) s->bad++;
    for (int64_t i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= s->ffn_n || (i && tok[i] <= tok[i - 1]) || !(w[i] > 0 && w[i] <= 1)) s->bad++;
        if (which != SM_IN_FFN) continue;
        s->wsum[tok[i]] += w[i];
        for (int64_t f = 0; f < cols; f++) /* gathered: the router's input columns, as they are */
            if (x[f * ld + i] != s->ffn_in[f * s->ffn_n + tok[i]]) {
                s->bad++;
                break;
            }
    }
    return 0;
}

void ta_moe_observer(const ta_arch *a) {
    const char *dir = a->make();
    sm_model *m = NULL;
    CHECK_OK(dir ? sm_model_load(dir, NULL, &m) : -1);
    if (!m) return;
    const sm_hparams *hp = sm_model_hparams(m);
    moe_seen s = {hp, malloc(sizeof(float) * (size_t)(hp->n_embd * TA_T)), 0, 0, hp->n_layer - 1, {0, 0},
                  calloc(TA_T, sizeof(double)), 0, 0};
    int32_t toks[TA_T];
    ta_tokens(a, toks);
    sm_context *c = NULL;
    CHECK_OK(sm_context_new(m, 64, 0, &c));
    if (c && s.ffn_in && s.wsum) {
        CHECK_OK(sm_context_set_observer(c, moe_obs, &s));
        CHECK_OK(sm_context_set_expert_observer(c, moe_eobs, &s));
        CHECK_OK(sm_model_eval(m, c, toks, TA_T, 0, TA_T - 1, NULL));
        /* every token went to n_expert_used experts, both inputs of each observed, weights summing to 1 */
        CHECK_MSG(s.routed[0] == TA_T * hp->n_expert_used && s.routed[1] == s.routed[0] && !s.bad && !s.downs,
                  "routed %lld/%lld of %lld, %d bad, %d dense down inputs", (long long)s.routed[0],
                  (long long)s.routed[1], (long long)(TA_T * hp->n_expert_used), s.bad, s.downs);
        for (int t = 0; t < TA_T; t++) CHECK_MSG(fabs(s.wsum[t] - 1) < 1e-5, "token %d: weights sum to %g", t, s.wsum[t]);
    }
    /* the dense FFN's calibration access has nothing to give: a clear error */
    int64_t r, k;
    CHECK_FAILS_WITH(sm_model_linear_shape(m, 0, SM_LIN_GATE, &r, &k), "mixture of experts");
    CHECK_OK(sm_model_linear_shape(m, 0, SM_LIN_Q, &r, &k));
    /* no GPU block for it yet: refused with a message, never run without the experts */
    sm_context *g = NULL;
    CHECK(sm_context_new_on(m, SM_DEVICE_CUDA, 64, 0, &g) != 0 && g == NULL);
    sm_context_free(c);
    sm_model_free(m);
    free(s.ffn_in);
    free(s.wsum);
}

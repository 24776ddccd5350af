/* test_lora.c - PEFT LoRA merging and GGUF adapter export.
 * The shared adapter must reproduce its torch-merged reference; synthetic adapters check
 * rsLoRA, rank/alpha patterns, fan_in_fan_out, weighted adapters, DoRA, modules_to_save and
 * every refusal against the formulas computed here in double precision. */
#include "testlib.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "formats/formats.h"
#include "model/model.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE "models/tiny-llama-kjv/f32"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* tensor data as doubles */
static double *as_f64(const sm_tensor *t) {
    int64_t n = sm_tensor_nelements(t);
    float *f = malloc((size_t)n * 4);
    double *d = malloc((size_t)n * 8);
    sm_plain_to_f32(t->type, t->data, f, n);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* max |a - b| / max |b| */
static double rel_err(const sm_tensor *t, const double *want) {
    int64_t n = sm_tensor_nelements(t);
    double *got = as_f64(t), m = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(want[i]) > m) m = fabs(want[i]);
        if (fabs(got[i] - want[i]) > e) e = fabs(got[i] - want[i]);
    }
    free(got);
    return m > 0 ? e / m : e;
}

static void shared_adapter_matches_reference(void) {
    const char *out = tl_tmp("merged");
    sm_lora *l;
    CHECK_OK(sm_lora_open(tl_asset("models/tiny-llama-kjv-lora-fortunes"), &l));
    if (!l) return;
    sm_lora *ads[1] = {l};
    CHECK_OK(sm_lora_merge_hf(tl_asset("models/tiny-llama-kjv"), ads, 1, out, SM_TYPE_F32, true));
    sm_lora_close(l);
    sm_ckpt *got, *ref;
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    CHECK_OK(sm_ckpt_open(p, &got));
    CHECK_OK(sm_ckpt_open(tl_asset("models/tiny-llama-kjv-lora-fortunes/merged-reference/model.safetensors"), &ref));
    if (!got || !ref) return;
    CHECK(got->n_tensors == 39 && ref->n_tensors == 39);
    double worst = 0;
    for (size_t i = 0; i < ref->n_tensors; i++) {
        const sm_tensor *r = &ref->tensors[i], *g = sm_ckpt_find(got, r->name);
        CHECK_MSG(g && g->type == SM_TYPE_F32, "%s", r->name);
        if (!g) continue;
        double *want = as_f64(r);
        double e = rel_err(g, want);
        if (e > worst) worst = e;
        free(want);
    }
    fprintf(stderr, "  merged vs torch reference: max |diff| / max |ref| = %.3g\n", worst);
    CHECK(worst <= 1e-6);
    snprintf(p, sizeof p, "%s/tokenizer.model", out);
    CHECK(sm_is_file(p));
    snprintf(p, sizeof p, "%s/config.json", out);
    CHECK(sm_is_file(p));
    sm_ckpt_close(got);
    sm_ckpt_close(ref);
}

/* ---- synthetic adapters on the f32 base ---- */

typedef struct { const char *module; int64_t r, in, out; float *a, *b, *mag; } mod;

static void write_adapter(const char *dir, const char *config_json, mod *mods, int n, const char *saved_name,
                          const sm_tensor *saved_like) {
    mkdir(dir, 0755);
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    tl_write_file(p, config_json, strlen(config_json));
    sm_st_writer *w = sm_st_writer_new();
    char name[512];
    for (int i = 0; i < n; i++) {
        int64_t sa[2] = {mods[i].r, mods[i].in}, sb[2] = {mods[i].out, mods[i].r}, sm[1] = {mods[i].out};
        snprintf(name, sizeof name, "base_model.model.%s.lora_A.weight", mods[i].module);
        sm_st_writer_add(w, name, SM_TYPE_F32, 2, sa);
        snprintf(name, sizeof name, "base_model.model.%s.lora_B.weight", mods[i].module);
        sm_st_writer_add(w, name, SM_TYPE_F32, 2, sb);
        if (mods[i].mag) {
            snprintf(name, sizeof name, "base_model.model.%s.lora_magnitude_vector", mods[i].module);
            sm_st_writer_add(w, name, SM_TYPE_F32, 1, sm);
        }
    }
    if (saved_name) sm_st_writer_add(w, saved_name, SM_TYPE_F32, saved_like->n_dims, saved_like->shape);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    CHECK_OK(sm_st_writer_begin(w, p));
    for (int i = 0; i < n; i++) {
        sm_st_writer_write(w, mods[i].a, (uint64_t)(mods[i].r * mods[i].in) * 4);
        sm_st_writer_write(w, mods[i].b, (uint64_t)(mods[i].out * mods[i].r) * 4);
        if (mods[i].mag) sm_st_writer_write(w, mods[i].mag, (uint64_t)mods[i].out * 4);
    }
    if (saved_name) {
        int64_t ne = sm_tensor_nelements(saved_like);
        float *f = malloc((size_t)ne * 4);
        for (int64_t k = 0; k < ne; k++) f[k] = (float)k * 1e-4f;
        sm_st_writer_write(w, f, (uint64_t)ne * 4);
        free(f);
    }
    CHECK_OK(sm_st_writer_finish(w));
}

static mod make_mod(const char *module, int64_t r, int64_t in, int64_t out, bool dora) {
    mod m = {module, r, in, out, malloc((size_t)(r * in) * 4), malloc((size_t)(out * r) * 4), NULL};
    for (int64_t i = 0; i < r * in; i++) m.a[i] = frand() * 0.1f;
    for (int64_t i = 0; i < out * r; i++) m.b[i] = frand() * 0.1f;
    if (dora) {
        m.mag = malloc((size_t)out * 4);
        for (int64_t i = 0; i < out; i++) m.mag[i] = 0.5f + fabsf(frand());
    }
    return m;
}

static void free_mod(mod *m) { free(m->a); free(m->b); free(m->mag); }

/* w += s * B A */
static void add_ba(double *w, const mod *m, double s) {
    for (int64_t o = 0; o < m->out; o++)
        for (int64_t j = 0; j < m->in; j++) {
            double acc = 0;
            for (int64_t k = 0; k < m->r; k++) acc += (double)m->b[o * m->r + k] * m->a[k * m->in + j];
            w[o * m->in + j] += s * acc;
        }
}

static sm_ckpt *merge_dirs(const char **dirs, int n, const char *out) {
    sm_lora *ads[4] = {0};
    for (int i = 0; i < n; i++) CHECK_OK(sm_lora_open(dirs[i], &ads[i]));
    CHECK_OK(sm_lora_merge_hf(tl_asset(BASE), ads, (size_t)n, out, SM_TYPE_F32, true));
    for (int i = 0; i < n; i++) sm_lora_close(ads[i]);
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    sm_ckpt *c = NULL;
    CHECK_OK(sm_ckpt_open(p, &c));
    return c;
}

#define QNAME "model.layers.1.self_attn.q_proj"
#define DNAME "model.layers.2.mlp.down_proj"

static void variants(void) {
    sm_ckpt *base;
    CHECK_OK(sm_ckpt_open(tl_asset(BASE), &base));
    if (!base) return;
    const sm_tensor *bq = sm_ckpt_find(base, QNAME ".weight"), *bd = sm_ckpt_find(base, DNAME ".weight");
    mod q = make_mod(QNAME, 4, 256, 256, false), d = make_mod(DNAME, 8, 768, 256, false);

    /* rsLoRA with a rank/alpha pattern for down_proj (r 8 -> pattern says 8, alpha 32) */
    const char *cfg1 = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"use_rslora\":true,"
                       "\"rank_pattern\":{\"down_proj\":8},\"alpha_pattern\":{\"layers.2.mlp.down_proj\":32},"
                       "\"target_modules\":[\"q_proj\",\"down_proj\"],\"bias\":\"none\"}";
    mod m1[2] = {q, d};
    write_adapter(tl_tmp("a1"), cfg1, m1, 2, NULL, NULL);
    const char *d1[1] = {tl_tmp("a1")};
    sm_ckpt *c = merge_dirs(d1, 1, tl_tmp("m1"));
    if (c) {
        double *wq = as_f64(bq), *wd = as_f64(bd);
        add_ba(wq, &q, 8.0 / sqrt(4.0));
        add_ba(wd, &d, 32.0 / sqrt(8.0));
        CHECK(rel_err(sm_ckpt_find(c, QNAME ".weight"), wq) < 1e-6);
        CHECK(rel_err(sm_ckpt_find(c, DNAME ".weight"), wd) < 1e-6);
        /* untouched tensors are the base's bytes */
        const sm_tensor *k0 = sm_ckpt_find(c, "model.layers.0.self_attn.k_proj.weight"),
                        *k0b = sm_ckpt_find(base, "model.layers.0.self_attn.k_proj.weight");
        CHECK(k0 && k0b && memcmp(k0->data, k0b->data, k0b->nbytes) == 0);
        free(wq);
        free(wd);
        sm_ckpt_close(c);
    }

    /* fan_in_fan_out on nn.Linear weights: PEFT turns it off; the result is the plain merge.
     * Two adapters with weights 0.5 and -2. */
    const char *cfg2 = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":4,\"fan_in_fan_out\":true,\"bias\":\"none\"}";
    mod q2 = make_mod(QNAME, 4, 256, 256, false);
    write_adapter(tl_tmp("a2"), cfg2, &q2, 1, NULL, NULL);
    char s1[600], s2[600];
    snprintf(s1, sizeof s1, "%s:0.5", tl_tmp("a1"));
    snprintf(s2, sizeof s2, "%s:-2", tl_tmp("a2"));
    const char *d2[2] = {s1, s2};
    c = merge_dirs(d2, 2, tl_tmp("m2"));
    if (c) {
        double *wq = as_f64(bq);
        add_ba(wq, &q, 0.5 * 8.0 / 2.0);
        add_ba(wq, &q2, -2.0 * 1.0);
        CHECK(rel_err(sm_ckpt_find(c, QNAME ".weight"), wq) < 1e-6);
        free(wq);
        sm_ckpt_close(c);
    }

    /* DoRA: W' = m * (W + s B A) / ||W + s B A|| per output row; modules_to_save replaces lm_head */
    const char *cfg3 = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":4,\"use_dora\":true,\"bias\":\"none\","
                       "\"modules_to_save\":[\"lm_head\"]}";
    mod q3 = make_mod(QNAME, 4, 256, 256, true);
    const sm_tensor *head = sm_ckpt_find(base, "lm_head.weight");
    write_adapter(tl_tmp("a3"), cfg3, &q3, 1, "base_model.model.lm_head.modules_to_save.default.weight", head);
    const char *d3[1] = {tl_tmp("a3")};
    c = merge_dirs(d3, 1, tl_tmp("m3"));
    if (c) {
        double *wq = as_f64(bq);
        add_ba(wq, &q3, 1.0);
        for (int64_t o = 0; o < 256; o++) {
            double ss = 0;
            for (int64_t j = 0; j < 256; j++) ss += wq[o * 256 + j] * wq[o * 256 + j];
            for (int64_t j = 0; j < 256; j++) wq[o * 256 + j] *= q3.mag[o] / sqrt(ss);
        }
        CHECK(rel_err(sm_ckpt_find(c, QNAME ".weight"), wq) < 1e-6);
        free(wq);
        const sm_tensor *h = sm_ckpt_find(c, "lm_head.weight");
        float v;
        memcpy(&v, (const char *)h->data + 4 * 1000, 4);
        CHECK(h && v == 1000 * 1e-4f);
        sm_ckpt_close(c);
    }
    /* llama.cpp adapters cannot carry DoRA: export refuses */
    sm_lora *l;
    CHECK_OK(sm_lora_open(tl_tmp("a3"), &l));
    if (l) {
        CHECK_FAILS_WITH(sm_lora_export_gguf(tl_asset(BASE), l, tl_tmp("dora.gguf"), NULL), "DoRA");
        CHECK(access(tl_tmp("dora.gguf"), F_OK) != 0);
        sm_lora_close(l);
    }
    free_mod(&q); free_mod(&d); free_mod(&q2); free_mod(&q3);
    sm_ckpt_close(base);
}

static void refusals(void) {
    const char *ok_cfg = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"bias\":\"none\"}";
    sm_lora *l = NULL;
    sm_ckpt *base;
    CHECK_OK(sm_ckpt_open(tl_asset(BASE), &base));
    /* a module the base does not have (adapter for another model) */
    mod x = make_mod("model.layers.9.self_attn.q_proj", 4, 256, 256, false);
    write_adapter(tl_tmp("r1"), ok_cfg, &x, 1, NULL, NULL);
    CHECK_OK(sm_lora_open(tl_tmp("r1"), &l));
    if (l) { CHECK_FAILS_WITH(sm_lora_check(&l, 1, base), "model.layers.9.self_attn.q_proj"); sm_lora_close(l); }
    free_mod(&x);
    /* shapes that do not fit the base */
    x = make_mod(QNAME, 4, 128, 256, false);
    write_adapter(tl_tmp("r2"), ok_cfg, &x, 1, NULL, NULL);
    CHECK_OK(sm_lora_open(tl_tmp("r2"), &l));
    if (l) { CHECK_FAILS_WITH(sm_lora_check(&l, 1, base), "does not fit"); sm_lora_close(l); }
    free_mod(&x);
    /* a tensor that is neither LoRA nor modules_to_save */
    x = make_mod(QNAME, 4, 256, 256, false);
    write_adapter(tl_tmp("r3"), ok_cfg, &x, 1, "base_model.model.lm_head.weight", sm_ckpt_find(base, "lm_head.weight"));
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r3"), &l), "modules_to_save");
    /* config problems */
    write_adapter(tl_tmp("r4"), "{\"r\":4}", &x, 1, NULL, NULL);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r4"), &l), "lora_alpha");
    write_adapter(tl_tmp("r5"), "{\"peft_type\":\"IA3\",\"r\":4,\"lora_alpha\":1}", &x, 1, NULL, NULL);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r5"), &l), "IA3");
    write_adapter(tl_tmp("r6"), "{\"r\":4,\"lora_alpha\":1,\"bias\":\"all\"}", &x, 1, NULL, NULL);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r6"), &l), "bias");
    write_adapter(tl_tmp("r7"), "{\"r\":4,\"lora_alpha\":1,\"use_dora\":true}", &x, 1, NULL, NULL);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r7"), &l), "magnitude");
    write_adapter(tl_tmp("r8"), "{\"r\":4, \"lora_alpha\":", &x, 1, NULL, NULL);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r8"), &l), "JSON");
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("nowhere"), &l), "adapter_config.json");
    free_mod(&x);
    /* lora_A without lora_B */
    mkdir(tl_tmp("r9"), 0755);
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_config.json", tl_tmp("r9"));
    tl_write_file(p, ok_cfg, strlen(ok_cfg));
    sm_st_writer *w = sm_st_writer_new();
    int64_t sa[2] = {4, 256};
    sm_st_writer_add(w, "base_model.model." QNAME ".lora_A.weight", SM_TYPE_F32, 2, sa);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", tl_tmp("r9"));
    sm_st_writer_begin(w, p);
    float z[1024] = {0};
    sm_st_writer_write(w, z, sizeof z);
    sm_st_writer_finish(w);
    CHECK_FAILS_WITH(sm_lora_open(tl_tmp("r9"), &l), "lora_B");
    /* the merged output is not left half-written when the merge fails */
    CHECK_OK(sm_lora_open(tl_tmp("r2"), &l));
    if (l) {
        CHECK(sm_lora_merge_hf(tl_asset(BASE), &l, 1, tl_tmp("bad-out"), SM_TYPE_F32, true) != 0);
        snprintf(p, sizeof p, "%s/model.safetensors", tl_tmp("bad-out"));
        CHECK(access(p, F_OK) != 0);
        sm_lora_close(l);
    }
    sm_ckpt_close(base);
}

/* llama.cpp's adapter format: keys, names, shapes; q/k lora_b rows carry the rope permutation */
static void export_gguf(void) {
    sm_lora *l;
    CHECK_OK(sm_lora_open(tl_asset("models/tiny-llama-kjv-lora-fortunes"), &l));
    if (!l) return;
    CHECK_OK(sm_lora_export_gguf(tl_asset("models/tiny-llama-kjv"), l, tl_tmp("adapter.gguf"), NULL));
    sm_lora_close(l);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(tl_tmp("adapter.gguf"), &g));
    if (!g) return;
    CHECK(!strcmp(sm_gguf_get_str(g, "general.type"), "adapter"));
    CHECK(!strcmp(sm_gguf_get_str(g, "adapter.type"), "lora"));
    CHECK(!strcmp(sm_gguf_get_str(g, "general.architecture"), "llama"));
    double alpha = 0;
    CHECK_OK(sm_gguf_get_f64(g, "adapter.lora.alpha", &alpha));
    CHECK(alpha == 16.0);
    CHECK(sm_gguf_n_tensors(g) == 56);
    const sm_tensor *a = sm_gguf_find_tensor(g, "blk.1.attn_q.weight.lora_a"),
                    *b = sm_gguf_find_tensor(g, "blk.1.attn_q.weight.lora_b"),
                    *bv = sm_gguf_find_tensor(g, "blk.1.attn_v.weight.lora_b");
    CHECK(a && a->shape[0] == 8 && a->shape[1] == 256);
    CHECK(b && b->shape[0] == 256 && b->shape[1] == 8);
    /* ggml rope layout: within each head of 32 rows, row 2i comes from HF row i and row 2i+1
     * from HF row 16+i (llama.cpp's converter permute) */
    sm_ckpt *ad;
    CHECK_OK(sm_ckpt_open(tl_asset("models/tiny-llama-kjv-lora-fortunes/adapter_model.safetensors"), &ad));
    if (ad && b && bv) {
        const sm_tensor *hb = sm_ckpt_find(ad, "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
        const float *hf = hb->data, *gg = b->data;
        bool ok = true;
        for (int h = 0; h < 8 && ok; h++)
            for (int i = 0; i < 16 && ok; i++)
                for (int k = 0; k < 8; k++) {
                    ok &= gg[(h * 32 + 2 * i) * 8 + k] == hf[(h * 32 + i) * 8 + k];
                    ok &= gg[(h * 32 + 2 * i + 1) * 8 + k] == hf[(h * 32 + 16 + i) * 8 + k];
                }
        CHECK(ok);
        const sm_tensor *hv = sm_ckpt_find(ad, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
        CHECK(memcmp(hv->data, bv->data, hv->nbytes) == 0); /* v: no permutation */
        sm_ckpt_close(ad);
    }
    sm_gguf_close(g);
}

/* convert / quantize --lora merge on the fly: the same tensors as converting the merged copy */
static void on_the_fly(void) {
    char args[4096];
    /* an f32 merged copy: the reference for both on-the-fly paths (a bf16 copy would round twice) */
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s' -o '%s' --dtype f32 --quiet",
             tl_asset("models/tiny-llama-kjv"), tl_asset("models/tiny-llama-kjv-lora-fortunes"), tl_tmp("fly32"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f16 --quiet", tl_tmp("fly32"), tl_tmp("a.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "convert '%s' --lora '%s' -o '%s' --outtype f16 --quiet",
             tl_asset("models/tiny-llama-kjv"), tl_asset("models/tiny-llama-kjv-lora-fortunes"), tl_tmp("b.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    tl_check_same_gguf_tensors(tl_tmp("a.gguf"), tl_tmp("b.gguf"));
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet", tl_tmp("fly32"), tl_tmp("c.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --lora '%s' --quiet", tl_asset("models/tiny-llama-kjv"),
             tl_tmp("d.gguf"), tl_asset("models/tiny-llama-kjv-lora-fortunes"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    tl_check_same_gguf_tensors(tl_tmp("c.gguf"), tl_tmp("d.gguf"));
    /* --lora with a GGUF input is refused */
    char *out;
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --lora '%s'", tl_tmp("a.gguf"), tl_tmp("e.gguf"),
             tl_asset("models/tiny-llama-kjv-lora-fortunes"));
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK_MSG(strstr(out, "lora export") != NULL, "%s", out);
    free(out);
}

/* smelt's validator on the merged model reproduces the recorded base+LoRA perplexity on
 * fortunes-eval (n_ctx 256): the first 24 of the 245 chunks against the reference's per-chunk
 * scores (4 under sanitizers); the whole run is `smelt ppl` in the README's results. */
static void merged_perplexity(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", tl_tmp("merged"));
    if (!sm_is_file(p)) { /* made by shared_adapter_matches_reference */
        CHECK_MSG(0, "merged model missing");
        return;
    }
    size_t len;
    char *txt = tl_slurp(tl_asset("models/tiny-llama-kjv-lora-fortunes/reference/tokens_fortunes_eval.txt"), &len);
    char *js = tl_slurp(tl_asset("models/tiny-llama-kjv-lora-fortunes/reference/perplexity.json"), NULL);
    cJSON *ref = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!txt || !ref) { free(txt); cJSON_Delete(ref); CHECK(0); return; }
    int32_t *ids = malloc(sizeof(int32_t) * (len / 2 + 1));
    int64_t n = 0;
    char *q = txt, *end;
    for (long v; (v = strtol(q, &end, 10)), end != q; q = end) ids[n++] = (int32_t)v;
    free(txt);
    CHECK(n == 62789);
    sm_model *m = NULL;
    CHECK_OK(sm_model_load(tl_tmp("merged"), NULL, &m));
    if (m) {
        sm_ppl_opts o = {.n_ctx = 256, .n_chunks = 24, .bos_id = 1, .quiet = true};
#if defined(__SANITIZE_ADDRESS__)
        o.n_chunks = 4;
#endif
        sm_ppl_result r;
        CHECK_OK(sm_perplexity(m, ids, n, &o, &r));
        const cJSON *mf = cJSON_GetObjectItem(ref, "merged_f32");
        const cJSON *per = cJSON_GetObjectItem(mf, "per_chunk_mean_nll");
        double sum = 0;
        for (int64_t c = 0; c < r.n_chunks; c++) sum += cJSON_GetArrayItem(per, (int)c)->valuedouble;
        double want = r.n_chunks == 245 ? cJSON_GetObjectItem(mf, "ppl")->valuedouble : exp(sum / (double)r.n_chunks);
        fprintf(stderr, "  merged model ppl %.4f over %lld chunks (reference %.4f)\n", r.ppl, (long long)r.n_chunks, want);
        CHECK_MSG(fabs(r.ppl / want - 1) < 1e-3, "ppl %f vs %f", r.ppl, want);
        sm_ppl_result_free(&r);
        sm_model_free(m);
    }
    free(ids);
    cJSON_Delete(ref);
}

void run_tests(void) {
    TEST(on_the_fly);
    TEST(shared_adapter_matches_reference);
    TEST(merged_perplexity);
    TEST(variants);
    TEST(refusals);
    TEST(export_gguf);
}

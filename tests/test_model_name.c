/* test_model_name.c - general.name / organization / basename / finetune / version / size_label
 * from model ids as llama.cpp's gguf-py derives them: the component table, the titles and the
 * _name_or_path-then-directory precedence were generated from gguf-py itself
 * (scripts/gen_model_id_cases.py -> tests/data/model_id_cases.h); end to end, `smelt convert`
 * of a tiny Qwen3 directory under realistic names writes those keys in convert_hf_to_gguf.py's
 * order (the files were compared byte for byte with convert_hf_to_gguf.py's). */
#include "convert/convert_internal.h"
#include "data/model_id_cases.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

static const char *const FIELD[6] = {"name", "organization", "basename", "finetune", "version", "size_label"};

static void check_fields(const char *what, const cv_model_id *m, const char *const want[6]) {
    const char *got[6] = {m->name, m->organization, m->basename, m->finetune, m->version, m->size_label};
    for (int f = 0; f < 6; f++)
        CHECK_MSG(want[f] ? got[f] && !strcmp(got[f], want[f]) : !got[f], "%s: %s \"%s\", want \"%s\"", what, FIELD[f],
                  got[f] ? got[f] : "(None)", want[f] ? want[f] : "(None)");
}

static void components(void) {
    const size_t n = sizeof MODEL_ID_CASES / sizeof *MODEL_ID_CASES;
    CHECK(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const struct model_id_case *c = &MODEL_ID_CASES[i];
        cv_model_id m;
        CHECK_OK(cv_model_id_components(c->id, c->total, &m));
        char what[160];
        snprintf(what, sizeof what, "'%s' (%lld params)", c->id, c->total);
        check_fields(what, &m, c->want);
        cv_model_id_free(&m);
    }
    cv_model_id m;
    CHECK_OK(cv_model_id_components(NULL, 0, &m));
    const char *const none[6] = {0};
    check_fields("None", &m, none);
}

static void titles(void) {
    for (size_t i = 0; i < sizeof TITLE_CASES / sizeof *TITLE_CASES; i++) {
        char out[128];
        cv_id_to_title(TITLE_CASES[i].id, out, sizeof out);
        CHECK_MSG(!strcmp(out, TITLE_CASES[i].want), "'%s': \"%s\", want \"%s\"", TITLE_CASES[i].id, out,
                  TITLE_CASES[i].want);
    }
}

static void precedence(void) {
    for (size_t i = 0; i < sizeof META_CASES / sizeof *META_CASES; i++) {
        const struct meta_case *c = &META_CASES[i];
        cv_model_id m;
        CHECK_OK(cv_model_meta(c->name_or_path, c->dir[0] ? c->dir : NULL, c->total, &m));
        char what[160];
        snprintf(what, sizeof what, "_name_or_path '%s', directory '%s'", c->name_or_path ? c->name_or_path : "(none)",
                 c->dir);
        check_fields(what, &m, c->want);
        cv_model_id_free(&m);
    }
}

/* Hostile ids: long runs of separators and pattern prefixes stay linear and bounded. */
static void long_ids(void) {
    const size_t n = 1 << 20;
    char *id = malloc(n + 1);
    if (!id) return;
    const char *const unit[] = {"-", "7b1-", "1x", "iter", "q4_", "a-", "v1.", "8x7B-"};
    for (size_t u = 0; u < sizeof unit / sizeof *unit; u++) {
        size_t k = strlen(unit[u]);
        for (size_t i = 0; i < n; i++) id[i] = unit[u][i % k];
        id[n] = 0;
        cv_model_id m;
        CHECK_OK(cv_model_id_components(id, 1000, &m));
        cv_model_id_free(&m);
    }
    free(id);
}

static sm_gguf *convert_as(const char *fixture, const char *name, const char *name_or_path) {
    char cmd[4096], *log = NULL;
    const char *dir = tl_tmp(name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, fixture, dir);
    if (system(cmd) != 0) return NULL;
    if (name_or_path) { /* the key first in config.json */
        char cfg[2048];
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        size_t len;
        char *text = tl_slurp(cfg, &len);
        if (!text) return NULL;
        char *with = malloc(len + 512);
        int k = with ? snprintf(with, len + 512, "{\"_name_or_path\": \"%s\", %s", name_or_path, text + 1) : -1;
        CHECK(k > 0 && tl_write_file(cfg, with, (size_t)k) == 0);
        free(with);
        free(text);
    }
    char out[2048];
    snprintf(out, sizeof out, "%s.gguf", dir);
    snprintf(cmd, sizeof cmd, "convert '%s' -o '%s' --outtype f32 -q", dir, out);
    int rc = tl_run_smelt(cmd, &log);
    CHECK_MSG(rc == 0, "%s", log ? log : "");
    free(log);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(out, &g));
    return g;
}

/* the general.* keys (after general.architecture) as convert_hf_to_gguf.py writes them: key, value */
static void check_general(const sm_gguf *g, const char *const *kv, size_t n) {
    if (!g) return;
    CHECK(sm_gguf_n_kv(g) > n / 2 + 1);
    for (size_t i = 0; i < n / 2 && i + 1 < sm_gguf_n_kv(g); i++) {
        const char *key = sm_gguf_key(g, i + 1), *s = sm_gguf_get_str(g, kv[2 * i]);
        CHECK_MSG(!strcmp(key, kv[2 * i]), "key %zu: %s, want %s", i + 1, key, kv[2 * i]);
        CHECK_MSG(s && !strcmp(s, kv[2 * i + 1]), "%s: \"%s\", want \"%s\"", kv[2 * i], s ? s : "(none)", kv[2 * i + 1]);
    }
    CHECK(strncmp(sm_gguf_key(g, n / 2 + 1), "general.", 8) != 0);
}

static void end_to_end(void) {
    const char *fixture = tl_make_qwen3_tiny(true);
    CHECK(fixture != NULL);
    if (!fixture) return;
    /* the fixture has about 130K parameters: "0.6B" is far from it (a context length for gguf-py), "70K" close */
    static const char *const qwen[] = {"general.type", "model", "general.name", "Qwen3 0.6B Instruct",
                                       "general.finetune", "0.6b-Instruct", "general.basename", "Qwen3",
                                       "general.size_label", "130K"};
    sm_gguf *g = convert_as(fixture, "Qwen3-0.6B-Instruct", NULL);
    check_general(g, qwen, sizeof qwen / sizeof *qwen);
    sm_gguf_close(g);
    static const char *const phi[] = {"general.type", "model", "general.name", "Phi4 Mini", "general.basename", "phi4",
                                      "general.size_label", "mini"};
    g = convert_as(fixture, "phi4-mini", NULL);
    check_general(g, phi, sizeof phi / sizeof *phi);
    sm_gguf_close(g);
    static const char *const nop[] = {"general.type",     "model",      "general.name",         "Qwen3 70K Base",
                                      "general.version",  "v1.0",       "general.organization", "Qwen",
                                      "general.finetune", "Base",       "general.basename",     "Qwen3",
                                      "general.size_label", "70K"};
    g = convert_as(fixture, "my-model-v1.0", "Qwen/Qwen3-70K-Base");
    check_general(g, nop, sizeof nop / sizeof *nop);
    sm_gguf_close(g);
    static const char *const plain[] = {"general.type", "model", "general.name", "Tiny Llama Kjv", "general.size_label",
                                        "130K"};
    g = convert_as(fixture, "tiny-llama-kjv", NULL);
    check_general(g, plain, sizeof plain / sizeof *plain);
    sm_gguf_close(g);
}

void run_tests(void) {
    TEST(components);
    TEST(titles);
    TEST(precedence);
    TEST(long_ids);
    TEST(end_to_end);
}

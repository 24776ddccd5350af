/* matrix.c - the release-matrix file (release.h): models, texts, recipes and methods of a
 * release, read once by `smelt sweep --matrix FILE` for the local and the Slurm modes. The
 * input is untrusted: every field is checked for its type and range, and the work is bounded
 * (cJSON's nesting limit, at most SM_MATRIX_MAX_MODELS models and SM_MATRIX_MAX_LIST entries
 * per list, 4 KiB per path). */
#include "release/release.h"

#include "quantize/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH_LEN 4096

static const char *const KEYS[] = {"models", "eval", "calib", "recipes", "methods", "target_bpw",
                                   "ctx", "chunks", "calib_chunks", "samples", "keep", NULL};
static const char KEY_LIST[] = "models, eval, calib, recipes, methods, target_bpw, ctx, chunks, calib_chunks, "
                               "samples, keep";

typedef struct ctx {
    const char *file; /* for messages */
    char *dir;        /* the file's directory ("" when none: paths stay as written) */
} ctx;

/* A path from the file: a non-empty string without NUL bytes (cJSON strings cannot hold one),
 * resolved against the file's directory when relative. */
static int get_path(const ctx *c, const cJSON *v, const char *what, char **out) {
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return sm_error("%s: %s: expected a non-empty string (a path)", c->file, what);
    const size_t n = strlen(v->valuestring);
    if (n > MAX_PATH_LEN) return sm_error("%s: %s: a path of %zu bytes (at most %d)", c->file, what, n, MAX_PATH_LEN);
    *out = v->valuestring[0] == '/' || !c->dir[0] ? strdup(v->valuestring) : sm_path_join(c->dir, v->valuestring);
    return *out ? 0 : sm_error("out of memory");
}

static bool name_ok(const char *s) {
    const size_t n = strlen(s);
    if (!n || n > 64 || s[0] == '.') return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The default name of a model: the last component of its path as written. */
static int default_name(const ctx *c, const char *path, size_t i, char **out) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *b = path + n;
    while (b > path && b[-1] != '/') b--;
    char tmp[80];
    if ((size_t)(path + n - b) >= sizeof tmp) tmp[0] = 0;
    else memcpy(tmp, b, (size_t)(path + n - b)), tmp[path + n - b] = 0;
    if (!name_ok(tmp))
        return sm_error("%s: models[%zu]: '%s' does not make a directory name; give the model as "
                        "{\"path\": ..., \"name\": \"NAME\"} (NAME: letters, digits, '.', '_', '-')",
                        c->file, i, path);
    *out = strdup(tmp);
    return *out ? 0 : sm_error("out of memory");
}

static int get_models(const ctx *c, const cJSON *arr, sm_matrix *m) {
    const int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 1 || n > SM_MATRIX_MAX_MODELS)
        return sm_error("%s: models: expected an array of 1 to %d models (paths, or {\"path\", \"name\"} objects)",
                        c->file, SM_MATRIX_MAX_MODELS);
    m->models = calloc((size_t)n, sizeof *m->models);
    if (!m->models) return sm_error("out of memory");
    char what[64];
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        sm_matrix_model *mm = &m->models[i];
        m->n_models = i + 1;
        snprintf(what, sizeof what, "models[%zu]", i);
        if (cJSON_IsString(e)) {
            if (get_path(c, e, what, &mm->path) || default_name(c, e->valuestring, i, &mm->name)) return -1;
        } else if (cJSON_IsObject(e)) {
            for (const cJSON *k = e->child; k; k = k->next)
                if (strcmp(k->string, "path") && strcmp(k->string, "name"))
                    return sm_error("%s: models[%zu]: unknown key \"%s\" (expected path, name)", c->file, i, k->string);
            snprintf(what, sizeof what, "models[%zu].path", i);
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path"), *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (get_path(c, p, what, &mm->path)) return -1;
            if (!nm) {
                if (default_name(c, p->valuestring, i, &mm->name)) return -1;
            } else if (!cJSON_IsString(nm) || !name_ok(nm->valuestring)) {
                return sm_error("%s: models[%zu].name: expected a directory name of 1 to 64 letters, digits, '.', "
                                "'_' or '-', not starting with '.'", c->file, i);
            } else if (!(mm->name = strdup(nm->valuestring))) {
                return sm_error("out of memory");
            }
        } else {
            return sm_error("%s: %s: expected a path or an object {\"path\", \"name\"}", c->file, what);
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->models[j].name, mm->name))
                return sm_error("%s: models[%zu] and models[%zu] are both named '%s' (each needs its own "
                                "directory: give one a \"name\")", c->file, j, i, mm->name);
    }
    return 0;
}

/* A list of 1..SM_MATRIX_MAX_LIST strings, each checked by `ok`. */
static int get_strings(const ctx *c, const cJSON *arr, const char *key, bool (*ok)(const char *),
                       const char *expected, char ***out, size_t *n_out) {
    const int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 1 || n > SM_MATRIX_MAX_LIST)
        return sm_error("%s: %s: expected an array of 1 to %d strings (%s)", c->file, key, SM_MATRIX_MAX_LIST, expected);
    *out = calloc((size_t)n, sizeof **out);
    if (!*out) return sm_error("out of memory");
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !ok(e->valuestring)) {
            const char *shown = cJSON_IsString(e) ? e->valuestring : "(not a string)";
            return sm_error("%s: %s[%zu]: '%.64s' is not %s", c->file, key, i, shown, expected);
        }
        if (!((*out)[i] = strdup(e->valuestring))) return sm_error("out of memory");
        *n_out = i + 1;
    }
    return 0;
}

static bool recipe_ok(const char *s) { return strlen(s) < 32 && sm_recipe_find(s) != NULL; }
static bool method_ok(const char *s) { return !strcmp(s, "rtn") || !strcmp(s, "imatrix") || !strcmp(s, "gptq"); }

static int get_long(const ctx *c, const cJSON *v, const char *key, long lo, long hi, long *out) {
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != floor(v->valuedouble))
        return sm_error("%s: %s: expected an integer in [%ld, %ld]", c->file, key, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

static int parse_obj(const ctx *c, const cJSON *root, sm_matrix *m) {
    if (!cJSON_IsObject(root)) return sm_error("%s: expected a JSON object (a release matrix: models, eval, ...)", c->file);
    for (const cJSON *k = root->child; k; k = k->next) {
        size_t i = 0;
        while (KEYS[i] && strcmp(KEYS[i], k->string)) i++;
        if (!KEYS[i]) return sm_error("%s: unknown key \"%.64s\" (expected %s)", c->file, k->string, KEY_LIST);
        for (const cJSON *d = root->child; d != k; d = d->next)
            if (!strcmp(d->string, k->string)) return sm_error("%s: the key \"%s\" appears twice", c->file, k->string);
    }
#define GET(k) cJSON_GetObjectItemCaseSensitive(root, k)
    if (!GET("models")) return sm_error("%s: no \"models\" (expected an array of model paths)", c->file);
    if (get_models(c, GET("models"), m)) return -1;
    if (!GET("eval")) return sm_error("%s: no \"eval\" (expected the path of the evaluation text)", c->file);
    if (get_path(c, GET("eval"), "eval", &m->eval)) return -1;
    if (GET("calib") && get_path(c, GET("calib"), "calib", &m->calib)) return -1;
    if (GET("recipes") && get_strings(c, GET("recipes"), "recipes", recipe_ok, "a recipe smelt knows", &m->recipes,
                                      &m->n_recipes))
        return -1;
    if (GET("methods") && get_strings(c, GET("methods"), "methods", method_ok, "rtn, imatrix or gptq", &m->methods,
                                      &m->n_methods))
        return -1;
    const cJSON *t = GET("target_bpw");
    if (t) {
        const int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : -1;
        if (n < 1 || n > SM_MATRIX_MAX_LIST)
            return sm_error("%s: target_bpw: expected an array of 1 to %d numbers", c->file, SM_MATRIX_MAX_LIST);
        if (!(m->target_bpw = calloc((size_t)n, sizeof *m->target_bpw))) return sm_error("out of memory");
        for (const cJSON *e = t->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || !(e->valuedouble >= 1.5 && e->valuedouble <= 16))
                return sm_error("%s: target_bpw[%zu]: expected bits per weight in [1.5, 16]", c->file, m->n_target_bpw);
            m->target_bpw[m->n_target_bpw++] = e->valuedouble;
        }
    }
    if (get_long(c, GET("ctx"), "ctx", 16, 1 << 20, &m->ctx) || get_long(c, GET("chunks"), "chunks", 1, 1L << 30, &m->chunks) ||
        get_long(c, GET("calib_chunks"), "calib_chunks", 1, 1L << 30, &m->calib_chunks) ||
        get_long(c, GET("samples"), "samples", 1, 1 << 20, &m->samples))
        return -1;
    const cJSON *keep = GET("keep");
    if (keep && !cJSON_IsBool(keep)) return sm_error("%s: keep: expected true or false", c->file);
    m->keep = cJSON_IsTrue(keep);
    bool calibrated = false;
    for (size_t i = 0; i < m->n_methods; i++) calibrated |= strcmp(m->methods[i], "rtn") != 0;
    if ((calibrated || m->n_target_bpw) && !m->calib)
        return sm_error("%s: %s needs \"calib\" (a calibration text)", c->file, calibrated ? "a method other than rtn"
                                                                                            : "target_bpw");
#undef GET
    return 0;
}

int sm_matrix_parse(const char *text, size_t len, const char *path, sm_matrix *out) {
    memset(out, 0, sizeof *out);
    ctx c = {.file = path};
    const char *slash = strrchr(path, '/');
    c.dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("");
    if (!c.dir) return sm_error("out of memory");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int rc;
    if (!root) {
        const size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        rc = sm_error("%s: not valid JSON near byte %zu (a release matrix is a JSON object)", path, off);
    } else {
        rc = parse_obj(&c, root, out);
    }
    cJSON_Delete(root);
    free(c.dir);
    if (rc) sm_matrix_free(out);
    return rc;
}

int sm_matrix_load(const char *path, sm_matrix *out) {
    char *txt = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (sm_read_file(path, (size_t)1 << 20, &txt, &len)) return -1;
    const int rc = sm_matrix_parse(txt, len, path, out);
    free(txt);
    return rc;
}

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void sm_matrix_free(sm_matrix *m) {
    for (size_t i = 0; i < m->n_models; i++) free(m->models[i].name), free(m->models[i].path);
    free(m->models);
    free(m->eval);
    free(m->calib);
    free_strings(m->recipes, m->n_recipes);
    free_strings(m->methods, m->n_methods);
    free(m->target_bpw);
    memset(m, 0, sizeof *m);
}

/* manifest.c - build, save, load and check release manifests (docs/manifest.md). */
#include "release/release.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

cJSON *sm_manifest_new(void) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddNumberToObject(m, "schema_version", SM_MANIFEST_SCHEMA);
    cJSON_AddStringToObject(m, "generator", "smelt " SM_VERSION);
    cJSON_AddArrayToObject(m, "artifacts");
    return m;
}

int sm_manifest_open_or_new(const char *path, cJSON **out) {
    if (!sm_is_file(path)) {
        *out = sm_manifest_new();
        return *out ? 0 : sm_error("out of memory");
    }
    return sm_manifest_load(path, out);
}

cJSON *sm_manifest_provenance(const char *command, int argc, char **argv) {
    cJSON *p = cJSON_CreateObject();
    if (!p) return NULL;
    cJSON_AddStringToObject(p, "command", command);
    cJSON *cl = cJSON_AddArrayToObject(p, "command_line");
    cJSON_AddItemToArray(cl, cJSON_CreateString("smelt"));
    for (int i = 0; i < argc; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(argv[i]));
    cJSON_AddStringToObject(p, "smelt_version", SM_VERSION);
    cJSON_AddArrayToObject(p, "sources");
    return p;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The absolute, normalized directory of the manifest (malloc'ed). */
static char *manifest_dir(const char *manifest_path) {
    char *copy = strdup(manifest_path);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = 0, copy)) : ".";
    char *abs = realpath(dir, NULL);
    free(copy);
    return abs;
}

/* `path` relative to directory `dir` (both absolute) when it lies inside it, else NULL. */
static char *inside(const char *dir, const char *path) {
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0) return strdup(path + 1);
    if (strncmp(path, dir, n) || path[n] != '/') return NULL;
    return strdup(path + n + 1);
}

/* How a file is named in the manifest: relative to the manifest's directory when it lies
 * inside it (artifacts move with their manifest), else its absolute path (sources). */
static char *entry_path(const char *manifest_path, const char *path) {
    char *dir = manifest_dir(manifest_path), *abs = realpath(path, NULL), *r = NULL;
    if (dir && abs && !(r = inside(dir, abs))) r = strdup(abs);
    if (!r) sm_error("%s: cannot resolve the path (relative to the manifest %s)", path, manifest_path);
    free(dir);
    free(abs);
    return r;
}

char *sm_manifest_resolve(const char *manifest_path, const char *p) {
    char *r = NULL;
    if (p[0] == '/') return strdup(p);
    char *copy = strdup(manifest_path);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    if (!slash) r = strdup(p);
    else {
        slash[1] = 0;
        if (asprintf(&r, "%s%s", copy, p) < 0) r = NULL;
    }
    free(copy);
    return r;
}

static void put_hashes(cJSON *o, const sm_file_hashes *h) {
    cJSON_AddNumberToObject(o, "size", (double)h->size);
    cJSON_AddStringToObject(o, "sha256", h->sha256);
    cJSON_AddStringToObject(o, "xxh3_128", h->xxh3_128);
}

cJSON *sm_manifest_file_entry(const char *manifest_path, const char *path) {
    sm_file_hashes h;
    char *ep = entry_path(manifest_path, path);
    if (!ep || sm_hash_file(path, &h)) {
        free(ep);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", ep);
    put_hashes(o, &h);
    free(ep);
    return o;
}

static void free_list(char **files, size_t n) {
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
}

/* Files of `inputs`: a file itself, a directory's regular files (sorted, not recursive, no
 * dot files); NULL inputs skipped. */
static int expand(const char *const *inputs, size_t n, char ***out, size_t *n_out) {
    size_t nf = 0, cap = 16;
    char **files = malloc(cap * sizeof *files);
    if (!files) return sm_error("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i]) continue;
        size_t first = nf;
        DIR *d = sm_is_dir(inputs[i]) ? opendir(inputs[i]) : NULL;
        struct dirent *e = NULL;
        do {
            char *p = NULL;
            if (!d) p = strdup(inputs[i]);
            else if ((e = readdir(d)) && e->d_name[0] != '.') p = sm_path_join(inputs[i], e->d_name);
            if (d && p && !sm_is_file(p)) {
                free(p);
                p = NULL;
            }
            if (!p) continue;
            if (nf == cap) {
                char **g = realloc(files, (cap *= 2) * sizeof *files);
                if (!g) {
                    free(p);
                    if (d) closedir(d);
                    free_list(files, nf);
                    return sm_error("out of memory");
                }
                files = g;
            }
            files[nf++] = p;
        } while (d && e);
        if (d) closedir(d);
        qsort(files + first, nf - first, sizeof *files, by_name);
    }
    *out = files;
    *n_out = nf;
    return 0;
}

/* Entries for files (hashed in parallel) in arr: an entry of the same path gets the new
 * digests (its other fields stay), else one is appended; `extra` (may be NULL) is copied into
 * each under `extra_key`. */
static int add_files(cJSON *arr, const char *manifest_path, const char *const *paths, size_t n,
                     const char *extra_key, const cJSON *extra) {
    sm_file_hashes *h = calloc(n ? n : 1, sizeof *h);
    if (!h) return sm_error("out of memory");
    int rc = sm_hash_files(paths, n, h);
    for (size_t i = 0; !rc && i < n; i++) {
        char *ep = entry_path(manifest_path, paths[i]);
        if (!ep) {
            rc = -1;
            break;
        }
        cJSON *o = NULL, *a;
        cJSON_ArrayForEach(a, arr) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "path");
            if (cJSON_IsString(p) && strcmp(p->valuestring, ep) == 0) o = a;
        }
        if (!o) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", ep);
            cJSON_AddItemToArray(arr, o);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(o, "size");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "sha256");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "xxh3_128");
        put_hashes(o, &h[i]);
        if (extra) {
            cJSON_DeleteItemFromObjectCaseSensitive(o, extra_key);
            cJSON_DeleteItemFromObjectCaseSensitive(o, "validation"); /* a new artifact: old numbers are void */
            cJSON_AddItemToObject(o, extra_key, cJSON_Duplicate(extra, 1));
        }
        free(ep);
    }
    free(h);
    return rc;
}

int sm_manifest_add_artifacts(cJSON *m, const char *manifest_path, const char *const *paths, size_t n,
                              const cJSON *provenance) {
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(m, "artifacts");
    if (!arr) arr = cJSON_AddArrayToObject(m, "artifacts");
    char **files;
    size_t nf;
    if (expand(paths, n, &files, &nf)) return -1;
    int rc = add_files(arr, manifest_path, (const char *const *)files, nf, "provenance", provenance);
    free_list(files, nf);
    return rc;
}

cJSON *sm_manifest_find_artifact(const cJSON *m, const char *manifest_path, const char *path) {
    char *ep = entry_path(manifest_path, path);
    if (!ep) return NULL;
    cJSON *found = NULL, *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(m, "artifacts")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "path");
        if (cJSON_IsString(p) && strcmp(p->valuestring, ep) == 0) found = a;
    }
    free(ep);
    return found;
}

int sm_manifest_add_sources(cJSON *prov, const char *manifest_path, const char *const *inputs, size_t n) {
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(prov, "sources");
    if (!arr) arr = cJSON_AddArrayToObject(prov, "sources");
    char **files;
    size_t nf;
    if (expand(inputs, n, &files, &nf)) return -1;
    int rc = add_files(arr, manifest_path, (const char *const *)files, nf, NULL, NULL);
    free_list(files, nf);
    return rc;
}

int sm_manifest_set_file(cJSON *obj, const char *key, const char *manifest_path, const char *path) {
    cJSON *o = sm_manifest_file_entry(manifest_path, path);
    if (!o) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, o);
    return 0;
}

int sm_manifest_save(const cJSON *m, const char *path) {
    char *txt = cJSON_Print(m);
    if (!txt) return sm_error("%s: out of memory", path);
    sm_outfile *o = sm_outfile_open(path);
    int rc = o ? 0 : -1;
    if (!rc && (sm_outfile_write(o, txt, strlen(txt)) || sm_outfile_write(o, "\n", 1))) rc = -1;
    if (o) rc = rc ? (sm_outfile_abort(o), -1) : sm_outfile_commit(o);
    free(txt);
    return rc;
}

int sm_manifest_load(const char *path, cJSON **out) {
    *out = NULL;
    char *txt;
    size_t len;
    if (sm_read_file(path, (size_t)256 << 20, &txt, &len)) return -1;
    cJSON *m = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return sm_error("%s: not a manifest (expected a JSON object)", path);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "schema_version");
    if (!cJSON_IsNumber(v)) {
        cJSON_Delete(m);
        return sm_error("%s: not a smelt manifest (no schema_version)", path);
    }
    if (v->valuedouble != SM_MANIFEST_SCHEMA) {
        const double version = v->valuedouble; /* v belongs to m */
        cJSON_Delete(m);
        return sm_error("%s: manifest schema_version %g is not supported (this smelt reads %d)", path, version,
                        SM_MANIFEST_SCHEMA);
    }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(m, "artifacts"))) {
        cJSON_Delete(m);
        return sm_error("%s: manifest has no \"artifacts\" array", path);
    }
    *out = m;
    return 0;
}

static int check_one(const cJSON *a, const char *manifest_path, const char *shown) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "path"), *size = cJSON_GetObjectItemCaseSensitive(a, "size"),
                *sha = cJSON_GetObjectItemCaseSensitive(a, "sha256"), *xx = cJSON_GetObjectItemCaseSensitive(a, "xxh3_128");
    if (!cJSON_IsString(p) || !cJSON_IsNumber(size) || !cJSON_IsString(sha) || !cJSON_IsString(xx))
        return sm_error("%s: artifact entry lacks path, size, sha256 or xxh3_128", manifest_path);
    char *file = sm_manifest_resolve(manifest_path, p->valuestring);
    if (!file) return sm_error("out of memory");
    if (!shown) shown = file;
    sm_file_hashes h;
    int rc = sm_hash_file(file, &h);
    if (!rc && (double)h.size != size->valuedouble)
        rc = sm_error("%s: size is %llu bytes, the manifest says %.0f", shown, (unsigned long long)h.size, size->valuedouble);
    if (!rc && strcmp(h.sha256, sha->valuestring))
        rc = sm_error("%s: sha256 is %s, the manifest says %s", shown, h.sha256, sha->valuestring);
    if (!rc && strcmp(h.xxh3_128, xx->valuestring))
        rc = sm_error("%s: xxh3_128 is %s, the manifest says %s", shown, h.xxh3_128, xx->valuestring);
    free(file);
    return rc;
}

int sm_manifest_verify_hashes(const cJSON *m, const char *manifest_path, const char *const *artifacts, size_t n,
                              size_t *n_checked) {
    size_t checked = 0;
    int rc = 0;
    if (n == 0) {
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(m, "artifacts")) {
            if ((rc = check_one(a, manifest_path, NULL))) break;
            checked++;
        }
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (!sm_is_file(artifacts[i])) {
            rc = sm_error("%s: no such file", artifacts[i]);
            break;
        }
        const cJSON *a = sm_manifest_find_artifact(m, manifest_path, artifacts[i]);
        if (!a) {
            rc = sm_error("%s: not listed in %s", artifacts[i], manifest_path);
            break;
        }
        if ((rc = check_one(a, manifest_path, artifacts[i]))) break;
        checked++;
    }
    if (n_checked) *n_checked = checked;
    return rc;
}

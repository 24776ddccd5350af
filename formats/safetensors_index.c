/* safetensors_index.c - the index of a sharded safetensors checkpoint
 * (model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}).
 * Shard names must be relative paths inside the index's directory (no "..", not absolute). */
#include "formats/safetensors_internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_entries(const void *a, const void *b) {
    return strcmp(((const sm_st_index_entry *)a)->name, ((const sm_st_index_entry *)b)->name);
}

static int cmp_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name stays inside the index's directory. */
static bool shard_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 4096 || s[0] == '/') return false;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t k = q ? (size_t)(q - p) : strlen(p);
        if (k == 2 && p[0] == '.' && p[1] == '.') return false;
        if (k == 0) return false;
        p += k + (q != NULL);
    }
    return true;
}

int sm_st_index_parse(const char *text, size_t len, const char *name, sm_st_index *ix) {
    memset(ix, 0, sizeof *ix);
    size_t bad;
    const char *what;
    if (sm_st_json_precheck((const uint8_t *)text, len, false, &bad, &what))
        return sm_error("%s: offset %zu: invalid JSON: %s", name, bad, what);
    char *copy = malloc(len + 1);
    if (!copy) return sm_error("%s: out of memory", name);
    memcpy(copy, text, len);
    copy[len] = 0;
    const char *end = NULL;
    ix->root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    size_t at = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
    free(copy);
    if (!ix->root) return sm_error("%s: offset %zu: invalid JSON: expected a JSON object", name, at);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(ix->root, "weight_map");
    if (!cJSON_IsObject(ix->root) || !cJSON_IsObject(map)) {
        sm_st_index_free(ix);
        return sm_error("%s: expected a JSON object with a \"weight_map\" object", name);
    }
    size_t n = (size_t)cJSON_GetArraySize(map);
    ix->entries = calloc(n ? n : 1, sizeof *ix->entries);
    ix->shards = calloc(n ? n : 1, sizeof *ix->shards);
    if (!ix->entries || !ix->shards) {
        sm_st_index_free(ix);
        return sm_error("%s: out of memory", name);
    }
    for (const cJSON *x = map->child; x; x = x->next) {
        if (!cJSON_IsString(x) || !shard_name_ok(x->valuestring)) {
            sm_error("%s: weight_map['%s']: expected a shard file name relative to the index's "
                     "directory", name, x->string);
            sm_st_index_free(ix);
            return -1;
        }
        ix->entries[ix->n++] = (sm_st_index_entry){x->string, x->valuestring, false};
        ix->shards[ix->n_shards++] = x->valuestring;
    }
    if (ix->n == 0) {
        sm_st_index_free(ix);
        return sm_error("%s: weight_map is empty (expected at least one tensor)", name);
    }
    qsort(ix->entries, ix->n, sizeof *ix->entries, cmp_entries);
    for (size_t i = 1; i < ix->n; i++)
        if (!strcmp(ix->entries[i - 1].name, ix->entries[i].name)) {
            sm_error("%s: weight_map lists tensor '%s' twice", name, ix->entries[i].name);
            sm_st_index_free(ix);
            return -1;
        }
    qsort(ix->shards, ix->n_shards, sizeof *ix->shards, cmp_strings);
    size_t k = 0;
    for (size_t i = 0; i < ix->n_shards; i++)
        if (k == 0 || strcmp(ix->shards[k - 1], ix->shards[i])) ix->shards[k++] = ix->shards[i];
    ix->n_shards = k;
    return 0;
}

sm_st_index_entry *sm_st_index_find(const sm_st_index *ix, const char *name) {
    sm_st_index_entry key = {name, NULL, false};
    return bsearch(&key, ix->entries, ix->n, sizeof *ix->entries, cmp_entries);
}

void sm_st_index_free(sm_st_index *ix) {
    cJSON_Delete(ix->root);
    free(ix->entries);
    free(ix->shards);
    memset(ix, 0, sizeof *ix);
}

/* safetensors.c - safetensors reader: one file, a sharded checkpoint through its
 * model.safetensors.index.json, or a directory holding either.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header, then the data section.
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data section) plus an optional "__metadata__" string->string object.
 * Validation follows the reference implementation (huggingface/safetensors): N at most
 * 100,000,000 and inside the file, the header a JSON object starting with '{' (trailing
 * spaces allowed), every tensor's byte count equal to its element count times the dtype
 * size, and the tensors, ordered by offset, covering the data section exactly: no overlap,
 * no gap, nothing after the last one. Tensor data is not copied (it points into the mmap)
 * and is only as aligned as the file makes it. The tensors are listed in name order (as the
 * safetensors library lists them).
 */
#include "formats/safetensors_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    const char *name;
    sm_type type;
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    uint64_t begin, end, nbytes;
    size_t order; /* position in the header */
} entry;

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A non-negative integer JSON number (the precheck already bounded it to 2^53). */
static bool get_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0) || item->valuedouble > 9007199254740992.0)
        return false;
    *out = (uint64_t)item->valuedouble;
    return (double)*out == item->valuedouble;
}

/* One header entry -> e (checks types, shape, byte count and bounds). */
static int read_entry(const cJSON *item, const char *file, uint64_t data_off, uint64_t data_len, entry *e) {
    const char *n = e->name;
    if (!cJSON_IsObject(item))
        return sm_error("%s: offset 8: tensor '%s': expected a JSON object with dtype, shape and "
                        "data_offsets", file, n);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return sm_error("%s: offset 8: tensor '%s': expected \"dtype\" as a string", file, n);
    e->type = sm_st_dtype_type(dt->valuestring);
    if (e->type == SM_TYPE_INVALID)
        return sm_error("%s: offset 8: tensor '%s': unknown dtype \"%.32s\" (expected one of F64 F32 "
                        "F16 BF16 I64 I32 I16 I8 U8 BOOL F8_E4M3 F8_E5M2 U16 U32 U64)", file, n,
                        dt->valuestring);
    if (!cJSON_IsArray(sh))
        return sm_error("%s: offset 8: tensor '%s': expected \"shape\" as an array of integers", file, n);
    int nd = cJSON_GetArraySize(sh);
    if (nd > SM_MAX_DIMS)
        return sm_error("%s: offset 8: tensor '%s': shape has %d dimensions, expected at most %d",
                        file, n, nd, SM_MAX_DIMS);
    e->n_dims = nd;
    uint64_t count = 1;
    bool overflow = false;
    int d = 0;
    for (const cJSON *x = sh->child; x; x = x->next, d++) {
        uint64_t v;
        if (!get_uint(x, &v))
            return sm_error("%s: offset 8: tensor '%s': shape[%d]: expected a non-negative integer",
                            file, n, d);
        e->shape[d] = (int64_t)v;
        overflow |= __builtin_mul_overflow(count, v, &count);
    }
    uint64_t esize = sm_type_get(e->type)->block_bytes;
    if (overflow || count > INT64_MAX || __builtin_mul_overflow(count, esize, &e->nbytes))
        return sm_error("%s: offset 8: tensor '%s': element count overflows (shape too large)", file, n);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !get_uint(of->child, &e->begin) ||
        !get_uint(of->child->next, &e->end))
        return sm_error("%s: offset 8: tensor '%s': expected \"data_offsets\" as [begin, end] "
                        "(two non-negative integers)", file, n);
    if (e->begin > e->end)
        return sm_error("%s: offset 8: tensor '%s': data_offsets [%llu, %llu]: expected begin <= end",
                        file, n, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
        return sm_error("%s: offset %llu: tensor '%s': data_offsets [%llu, %llu] run past the end of "
                        "the data section (%llu bytes)", file, (unsigned long long)(data_off + e->begin),
                        n, (unsigned long long)e->begin, (unsigned long long)e->end,
                        (unsigned long long)data_len);
    if (e->end - e->begin != e->nbytes) {
        char buf[256];
        sm_tensor t = {.n_dims = e->n_dims};
        memcpy(t.shape, e->shape, sizeof t.shape);
        return sm_error("%s: offset %llu: tensor '%s': %s %s needs %llu bytes, but data_offsets "
                        "[%llu, %llu] hold %llu", file, (unsigned long long)(data_off + e->begin), n,
                        dt->valuestring, sm_shape_str(&t, buf, sizeof buf),
                        (unsigned long long)e->nbytes, (unsigned long long)e->begin,
                        (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    }
    return 0;
}

static int cmp_offsets(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_entry_names(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* __metadata__: null, or an object of strings. */
static int check_metadata(const cJSON *m, const char *file) {
    if (cJSON_IsNull(m)) return 0;
    if (!cJSON_IsObject(m))
        return sm_error("%s: offset 8: __metadata__: expected an object of strings", file);
    for (const cJSON *x = m->child; x; x = x->next)
        if (!cJSON_IsString(x))
            return sm_error("%s: offset 8: __metadata__ key '%s': expected a string value", file, x->string);
    return 0;
}

/* The tensors in offset order must tile [0, data_len) exactly. */
static int check_coverage(const entry *es, size_t n, const char *file, uint64_t data_off, uint64_t data_len) {
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (es[i].begin < pos)
            return sm_error("%s: offset %llu: tensor '%s' (data_offsets [%llu, %llu]) overlaps tensor "
                            "'%s' (which ends at %llu)", file, (unsigned long long)(data_off + es[i].begin),
                            es[i].name, (unsigned long long)es[i].begin, (unsigned long long)es[i].end,
                            es[i - 1].name, (unsigned long long)pos);
        if (es[i].begin > pos)
            return sm_error("%s: offset %llu: gap in the data section: bytes [%llu, %llu) belong to no "
                            "tensor (expected tensor '%s' to begin at %llu)",
                            file, (unsigned long long)(data_off + pos), (unsigned long long)pos,
                            (unsigned long long)es[i].begin, es[i].name, (unsigned long long)pos);
        pos = es[i].end;
    }
    if (pos != data_len)
        return sm_error("%s: offset %llu: %llu trailing bytes after the last tensor (expected the tensors "
                        "to cover the data section exactly)", file, (unsigned long long)(data_off + pos),
                        (unsigned long long)(data_len - pos));
    return 0;
}

int sm_safetensors_parse(const uint8_t *buf, size_t len, const char *file, sm_ckpt *c, cJSON **metadata) {
    *metadata = NULL;
    if (len < 8)
        return sm_error("%s: offset 0: file is %zu bytes, expected at least 8 (the header length)", file, len);
    uint64_t n = le64(buf);
    if (n > SM_ST_MAX_HEADER)
        return sm_error("%s: offset 0: header length %llu is too large (expected at most %u)", file,
                        (unsigned long long)n, SM_ST_MAX_HEADER);
    if (n > len - 8)
        return sm_error("%s: offset 0: header length %llu runs past the end of the file (%zu bytes)", file,
                        (unsigned long long)n, len);
    const uint8_t *hdr = buf + 8;
    if (n == 0 || hdr[0] != '{')
        return sm_error("%s: offset 8: expected the JSON header to begin with '{'", file);
    size_t bad;
    const char *what;
    if (sm_st_json_precheck(hdr, n, true, &bad, &what))
        return sm_error("%s: offset %llu: invalid JSON header: %s", file, (unsigned long long)(8 + bad), what);

    /* cJSON gets a NUL-terminated copy, so no defect of its own can read past the header */
    char *text = malloc(n + 1);
    if (!text) return sm_error("%s: out of memory for a %llu-byte header", file, (unsigned long long)n);
    memcpy(text, hdr, n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        free(text);
        cJSON_Delete(root);
        return sm_error("%s: offset %llu: invalid JSON header: expected a JSON object", file,
                        (unsigned long long)(8 + at));
    }
    for (const char *p = end; p < text + n; p++)
        if (!strchr(" \t\r\n", *p) || !*p) {
            unsigned long long at = 8 + (unsigned long long)(p - text);
            free(text);
            cJSON_Delete(root);
            return sm_error("%s: offset %llu: expected only whitespace after the JSON header", file, at);
        }
    free(text);

    uint64_t data_off = 8 + n, data_len = len - 8 - n;
    size_t cap = (size_t)cJSON_GetArraySize(root);
    entry *es = calloc(cap ? cap : 1, sizeof *es);
    const char **names = calloc(cap ? cap : 1, sizeof *names);
    size_t ne = 0;
    int rc = 0;
    if (!es || !names) rc = sm_error("%s: out of memory", file);
    const cJSON *meta = NULL;
    for (const cJSON *item = root->child; item && !rc; item = item->next) {
        const char *key = item->string;
        if (!strcmp(key, "__metadata__")) {
            if (meta) rc = sm_error("%s: offset 8: __metadata__ appears twice", file);
            else if (!(rc = check_metadata(item, file))) meta = item;
            continue;
        }
        size_t klen = strlen(key);
        if (klen == 0 || klen > SM_ST_MAX_NAME) {
            rc = sm_error("%s: offset 8: tensor name of %zu bytes: expected 1 to %d bytes", file, klen,
                          SM_ST_MAX_NAME);
            break;
        }
        entry *e = &es[ne];
        e->name = key;
        e->order = ne;
        names[ne++] = key;
        rc = read_entry(item, file, data_off, data_len, e);
    }
    if (!rc) {
        qsort(names, ne, sizeof *names, cmp_names);
        for (size_t i = 1; i < ne && !rc; i++)
            if (!strcmp(names[i - 1], names[i]))
                rc = sm_error("%s: offset 8: tensor '%s' appears twice in the header", file, names[i]);
    }
    if (!rc) {
        qsort(es, ne, sizeof *es, cmp_offsets);
        rc = check_coverage(es, ne, file, data_off, data_len);
        /* the tensors in name order, as the safetensors library (and so llama.cpp's converter,
         * which writes them in that order) lists a file's tensors, whatever the header's or the
         * data's order (a mixed-dtype file stores its data grouped by dtype) */
        if (!rc) qsort(es, ne, sizeof *es, cmp_entry_names);
    }
    for (size_t i = 0; i < ne && !rc; i++) {
        sm_tensor *t = sm_ckpt_add_tensor(c);
        if (!t || !(t->name = sm_ckpt_strdup(c, es[i].name))) {
            rc = sm_error("%s: out of memory", file);
            break;
        }
        t->type = es[i].type;
        t->n_dims = es[i].n_dims;
        memcpy(t->shape, es[i].shape, sizeof t->shape);
        t->data = buf + data_off + es[i].begin;
        t->nbytes = es[i].nbytes;
    }
    if (!rc && meta && cJSON_IsObject(meta))
        *metadata = cJSON_DetachItemViaPointer(root, (cJSON *)meta);
    free(es);
    free(names);
    cJSON_Delete(root);
    return rc;
}

/* ---- opening files ---- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

/* Map one file and append its tensors. */
static int add_file(sm_ckpt *c, const char *file, cJSON **metadata) {
    const sm_mmap *m = sm_ckpt_add_mmap(c, file);
    if (!m) return -1;
    return sm_safetensors_parse(m->data, m->size, file, c, metadata);
}

static int open_single(sm_ckpt *c, const char *file) {
    if (add_file(c, file, &c->metadata)) return -1;
    return sm_ckpt_finish(c);
}

static int open_sharded(sm_ckpt *c, const char *index_path) {
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(index_path, (size_t)64 << 20, &text, &len)) return -1;
    sm_st_index ix;
    int rc = sm_st_index_parse(text, len, index_path, &ix);
    free(text);
    if (rc) return -1;
    /* shards are resolved relative to the index's directory */
    const char *slash = strrchr(index_path, '/');
    size_t dir_len = slash ? (size_t)(slash - index_path + 1) : 0;
    for (size_t s = 0; s < ix.n_shards && !rc; s++) {
        const char *shard = ix.shards[s];
        size_t shard_len = strlen(shard);
        char *path = malloc(dir_len + shard_len + 1);
        if (!path) {
            rc = sm_error("out of memory");
            break;
        }
        memcpy(path, index_path, dir_len);
        memcpy(path + dir_len, shard, shard_len + 1);
        if (!sm_is_file(path)) {
            rc = sm_error("%s: weight_map names shard '%s', but %s is missing (no such file)", index_path,
                          shard, path);
            free(path);
            break;
        }
        size_t first = c->n_tensors;
        cJSON *meta = NULL;
        rc = add_file(c, path, &meta);
        if (!rc && !c->metadata) c->metadata = meta;
        else cJSON_Delete(meta);
        for (size_t i = first; i < c->n_tensors && !rc; i++) {
            const char *name = c->tensors[i].name;
            sm_st_index_entry *e = sm_st_index_find(&ix, name);
            if (!e)
                rc = sm_error("%s: tensor '%s' in shard %s is missing from weight_map", index_path, name, shard);
            else if (strcmp(e->shard, shard) && e->seen)
                rc = sm_error("%s: tensor '%s' appears in two shards, %s and %s", index_path, name, e->shard,
                              shard);
            else if (strcmp(e->shard, shard))
                rc = sm_error("%s: tensor '%s' is in shard %s, but weight_map places it in %s (wrong shard)",
                              index_path, name, shard, e->shard);
            else
                e->seen = true;
        }
        free(path);
    }
    for (size_t i = 0; i < ix.n && !rc; i++)
        if (!ix.entries[i].seen)
            rc = sm_error("%s: weight_map lists tensor '%s' in shard %s, but that shard is missing it",
                          index_path, ix.entries[i].name, ix.entries[i].shard);
    sm_st_index_free(&ix);
    return rc ? -1 : sm_ckpt_finish(c);
}

int sm_safetensors_open(const char *path, sm_ckpt **out) {
    *out = NULL;
    char *resolved = NULL;
    const char *file = path;
    if (sm_is_dir(path)) {
        resolved = sm_path_join(path, "model.safetensors");
        if (resolved && !sm_is_file(resolved)) {
            free(resolved);
            resolved = sm_path_join(path, "model.safetensors.index.json");
            if (resolved && !sm_is_file(resolved)) {
                free(resolved);
                return sm_error("%s: expected model.safetensors or model.safetensors.index.json in this "
                                "directory", path);
            }
        }
        if (!resolved) return sm_error("out of memory");
        file = resolved;
    }
    sm_ckpt *c = sm_ckpt_new(SM_CKPT_SAFETENSORS, path);
    int rc = !c ? -1 : ends_with(file, ".json") ? open_sharded(c, file) : open_single(c, file);
    free(resolved);
    if (rc) {
        sm_ckpt_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

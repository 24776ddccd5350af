/* safetensors_writer.c - streaming safetensors writer.
 *
 * Tensors are declared first (name, dtype, shape); begin writes the header: u64 length, then
 * JSON with "__metadata__" ({"format":"pt"} unless the caller set metadata) followed by each
 * tensor's dtype / shape / data_offsets in declaration order, padded with spaces to a
 * multiple of 8 as Hugging Face's writer does. The data section is the tensors' bytes, back
 * to back in declaration order; the writer refuses more bytes than declared, and finish
 * refuses fewer. Output goes through sm_outfile, so a failed or aborted write leaves no file.
 */
#include "formats/safetensors_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct st_item {
    char *name;
    sm_type type;
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    uint64_t nbytes;
} st_item;

struct sm_st_writer {
    st_item *items;
    size_t n, cap;
    struct { char *key, *val; } *meta;
    size_t n_meta, cap_meta;
    char *path;
    sm_outfile *out;
    uint64_t total, done; /* data bytes declared / written */
    size_t cur;           /* the tensor the next data byte belongs to */
    uint64_t cur_done;    /* bytes of it already written */
    bool failed;
};

/* ---- a growable text buffer ---- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k) {
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + k + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string literal; s is valid UTF-8, so only quotes, backslashes and control
 * characters need escaping. */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_put(b, e, 6);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* ---- the writer ---- */

sm_st_writer *sm_st_writer_new(void) {
    sm_st_writer *w = calloc(1, sizeof *w);
    if (!w) sm_error("out of memory");
    return w;
}

static bool grow(void *arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arr, c * elem);
    if (!p) return false;
    *(void **)arr = p;
    *cap = c;
    return true;
}

int sm_st_writer_add(sm_st_writer *w, const char *name, sm_type type, int n_dims, const int64_t *shape) {
    if (w->out) return sm_error("%s: tensor '%s' declared after the header was written", w->path, name);
    size_t len = strlen(name);
    if (len == 0 || len > SM_ST_MAX_NAME || !sm_st_utf8_valid(name, len) || !strcmp(name, "__metadata__"))
        return sm_error("tensor name '%s': expected 1 to %d bytes of UTF-8, not \"__metadata__\"", name,
                        SM_ST_MAX_NAME);
    if (!sm_st_type_dtype(type))
        return sm_error("tensor '%s': type %s has no safetensors dtype", name, sm_type_name(type));
    if (n_dims < 0 || n_dims > SM_MAX_DIMS)
        return sm_error("tensor '%s': %d dimensions, expected 0 to %d", name, n_dims, SM_MAX_DIMS);
    st_item it = {.type = type, .n_dims = n_dims};
    uint64_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0) return sm_error("tensor '%s': shape[%d] = %lld is negative", name, i, (long long)shape[i]);
        it.shape[i] = shape[i];
        if (__builtin_mul_overflow(count, (uint64_t)shape[i], &count))
            return sm_error("tensor '%s': element count overflows", name);
    }
    if (__builtin_mul_overflow(count, (uint64_t)sm_type_get(type)->block_bytes, &it.nbytes) ||
        it.nbytes > (1ull << 53) - w->total)
        return sm_error("tensor '%s': too large for a safetensors file (offsets above 2^53)", name);
    if (!grow(&w->items, &w->cap, w->n + 1, sizeof *w->items) || !(it.name = strdup(name)))
        return sm_error("out of memory");
    w->items[w->n++] = it;
    w->total += it.nbytes;
    return 0;
}

int sm_st_writer_set_metadata(sm_st_writer *w, const char *key, const char *value) {
    if (w->out) return sm_error("%s: metadata '%s' set after the header was written", w->path, key);
    if (!sm_st_utf8_valid(key, strlen(key)) || !sm_st_utf8_valid(value, strlen(value)))
        return sm_error("metadata '%s': expected UTF-8 key and value", key);
    char *v = strdup(value);
    if (!v) return sm_error("out of memory");
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].val);
            w->meta[i].val = v;
            return 0;
        }
    char *k = strdup(key);
    if (!k || !grow(&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta)) {
        free(k);
        free(v);
        return sm_error("out of memory");
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta++].val = v;
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every declared name once. */
static int check_unique(const sm_st_writer *w, const char *path) {
    const char **names = malloc((w->n ? w->n : 1) * sizeof *names);
    if (!names) return sm_error("out of memory");
    for (size_t i = 0; i < w->n; i++) names[i] = w->items[i].name;
    qsort(names, w->n, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 1; i < w->n && !rc; i++)
        if (!strcmp(names[i - 1], names[i])) rc = sm_error("%s: tensor '%s' declared twice", path, names[i]);
    free(names);
    return rc;
}

static void build_header(const sm_st_writer *w, sbuf *b) {
    sb_str(b, "{\"__metadata__\":{");
    if (w->n_meta == 0) sb_str(b, "\"format\":\"pt\"");
    for (size_t i = 0; i < w->n_meta; i++) {
        if (i) sb_str(b, ",");
        sb_json(b, w->meta[i].key);
        sb_str(b, ":");
        sb_json(b, w->meta[i].val);
    }
    sb_str(b, "}");
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_item *it = &w->items[i];
        sb_str(b, ",");
        sb_json(b, it->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, sm_st_type_dtype(it->type));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < it->n_dims; d++) {
            if (d) sb_str(b, ",");
            sb_u64(b, (uint64_t)it->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_str(b, ",");
        sb_u64(b, off + it->nbytes);
        sb_str(b, "]}");
        off += it->nbytes;
    }
    sb_str(b, "}");
    while (b->n % 8) sb_str(b, " ");
}

int sm_st_writer_begin(sm_st_writer *w, const char *path) {
    if (w->out) return sm_error("%s: writer already begun", path);
    if (check_unique(w, path)) return -1;
    sbuf b = {0};
    build_header(w, &b);
    if (b.oom) {
        free(b.p);
        return sm_error("%s: out of memory", path);
    }
    if (b.n > SM_ST_MAX_HEADER) {
        free(b.p);
        return sm_error("%s: header of %zu bytes exceeds the safetensors limit of %u", path, b.n,
                        SM_ST_MAX_HEADER);
    }
    free(w->path);
    w->path = strdup(path);
    if (!w->path) {
        free(b.p);
        return sm_error("out of memory");
    }
    w->out = sm_outfile_open(path);
    if (!w->out) {
        free(b.p);
        return -1;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    int rc = sm_outfile_write(w->out, len8, 8) || sm_outfile_write(w->out, b.p, b.n) ? -1 : 0;
    free(b.p);
    if (rc) w->failed = true;
    return rc;
}

int sm_st_writer_write(sm_st_writer *w, const void *data, uint64_t nbytes) {
    if (!w->out) return sm_error("safetensors writer: data written before begin");
    if (w->failed) return -1;
    if (nbytes > w->total - w->done) {
        w->failed = true;
        return sm_error("%s: %llu bytes written at data offset %llu, but only %llu remain of the %llu "
                        "declared (too many bytes)", w->path, (unsigned long long)nbytes,
                        (unsigned long long)w->done, (unsigned long long)(w->total - w->done),
                        (unsigned long long)w->total);
    }
    if (sm_outfile_write(w->out, data, (size_t)nbytes)) {
        w->failed = true;
        return -1;
    }
    w->done += nbytes;
    w->cur_done += nbytes;
    while (w->cur < w->n && w->cur_done >= w->items[w->cur].nbytes) w->cur_done -= w->items[w->cur++].nbytes;
    return 0;
}

static void writer_free(sm_st_writer *w) {
    for (size_t i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].val);
    }
    free(w->meta);
    free(w->path);
    free(w);
}

int sm_st_writer_finish(sm_st_writer *w) {
    int rc = 0;
    if (!w->out) rc = sm_error("safetensors writer: finish without begin");
    else if (w->failed) rc = -1;
    else if (w->done != w->total)
        rc = sm_error("%s: only %llu of the %llu declared data bytes were written (tensor '%s' is "
                      "incomplete: too few bytes)", w->path, (unsigned long long)w->done,
                      (unsigned long long)w->total, w->items[w->cur].name);
    if (w->out) {
        if (rc) sm_outfile_abort(w->out);
        else rc = sm_outfile_commit(w->out);
    }
    writer_free(w);
    return rc;
}

void sm_st_writer_abort(sm_st_writer *w) {
    if (!w) return;
    sm_outfile_abort(w->out);
    writer_free(w);
}

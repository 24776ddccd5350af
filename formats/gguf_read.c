/* gguf_read.c - GGUF reader: maps a file (or takes a buffer), validates every byte of the
 * header, metadata and tensor infos before using it, and exposes the metadata as
 * sm_gguf_value and the tensors as sm_tensor views into the mapping (shapes outermost-first).
 *
 * Validation: magic, version (2 or 3), counts against the bytes left (before anything is
 * allocated), string lengths, array counts, nesting depth, value types, bool bytes, duplicate
 * and empty keys, general.alignment (u32, non-zero power of two), tensor n_dims (1..4),
 * dimensions (>= 0), element and byte counts (no overflow), ggml type, row length a multiple
 * of the block size, offsets aligned, data inside the file, tensors not overlapping, duplicate
 * tensor names. Each error names the file, the byte offset and what was expected. */
#include "gguf_internal.h"
#include "formats/sink.h"
#include "formats/smelt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sm_gguf {
    sm_mmap map;            /* for sm_gguf_open; empty for sm_gguf_open_mem */
    const uint8_t *base;
    size_t size;
    char *path;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    size_t n_kv;
    char **keys;
    sm_gguf_value *vals;
    gguf_index kv_index;
    size_t n_tensors;
    sm_tensor *tensors;
    char **names;
    gguf_index tensor_index;
    size_t n_parts;         /* a split set read as one: the other parts (their tensors are */
    struct sm_gguf **parts; /* appended to this one's; they own their mappings and names) */
};

/* Smallest possible encodings, used to refuse counts before allocating for them. */
#define MIN_KV_BYTES 14     /* key length (8) + 1 byte of key + type (4) + u8 value (1) */
#define MIN_TENSOR_BYTES 33 /* name length (8) + 1 byte + n_dims (4) + ne (8) + type (4) + offset (8) */

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    const char *ctx_kind, *ctx_name; /* "key" / "tensor" and its name while parsing one */
    size_t align_at;                 /* where general.alignment's value type is */
} reader;

/* "path: offset N: [key 'name': ]message" (format first, then the offset, then its arguments) */
static int fail(const reader *r, const char *fmt, size_t at, ...) __attribute__((format(printf, 2, 4)));
static int fail(const reader *r, const char *fmt, size_t at, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, at);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->ctx_kind)
        return sm_error("%s: offset %zu: %s '%.200s': %s", r->path, at, r->ctx_kind, r->ctx_name, msg);
    return sm_error("%s: offset %zu: %s", r->path, at, msg);
}

static int need(reader *r, uint64_t n, const char *what) {
    if (n > r->size - r->pos)
        return fail(r, "expected %s (%llu bytes), but only %zu bytes remain", r->pos, what, (unsigned long long)n,
                    r->size - r->pos);
    return 0;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) {
    if (need(r, 4, what)) return -1;
    *v = (uint32_t)le(r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(reader *r, uint64_t *v, const char *what) {
    if (need(r, 8, what)) return -1;
    *v = le(r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string: u64 length + bytes, copied NUL-terminated. `max` bounds the length; names
 * (keys, tensor names) may not contain NUL bytes. */
static int rd_string(reader *r, char **out, uint64_t *out_len, uint64_t max, bool is_name, const char *what) {
    size_t at = r->pos;
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len > max)
        return fail(r, "expected %s of at most %llu bytes, found length %llu", at,
                        what, (unsigned long long)max, (unsigned long long)len);
    if (need(r, len, what)) return -1;
    if (is_name && memchr(r->p + r->pos, 0, (size_t)len))
        return fail(r, "expected %s without NUL bytes", r->pos, what);
    char *s = malloc((size_t)len + 1);
    if (!s) return fail(r, "out of memory for %s", r->pos, what);
    memcpy(s, r->p + r->pos, (size_t)len);
    s[len] = 0;
    r->pos += (size_t)len;
    *out = s;
    if (out_len) *out_len = len;
    return 0;
}

static int rd_vtype(reader *r, sm_gguf_vtype *t, const char *what) {
    size_t at = r->pos;
    uint32_t v;
    if (rd_u32(r, &v, what)) return -1;
    if (!gguf_vtype_valid(v))
        return fail(r, "expected %s (0..12), found %u", at, what, v);
    *t = (sm_gguf_vtype)v;
    return 0;
}

/* A fixed-size scalar at p into v. */
static int scalar(reader *r, const uint8_t *p, sm_gguf_vtype t, sm_gguf_value *v) {
    v->type = t;
    switch (t) {
    case SM_GGUF_UINT8: v->v.u = p[0]; break;
    case SM_GGUF_INT8: v->v.i = (int8_t)p[0]; break;
    case SM_GGUF_UINT16: v->v.u = le(p, 2); break;
    case SM_GGUF_INT16: v->v.i = (int16_t)(uint16_t)le(p, 2); break;
    case SM_GGUF_UINT32: v->v.u = le(p, 4); break;
    case SM_GGUF_INT32: v->v.i = (int32_t)(uint32_t)le(p, 4); break;
    case SM_GGUF_UINT64: v->v.u = le(p, 8); break;
    case SM_GGUF_INT64: v->v.i = (int64_t)le(p, 8); break;
    case SM_GGUF_FLOAT32: {
        uint32_t b = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &b, 4);
        v->v.f = f;
        break;
    }
    case SM_GGUF_FLOAT64: {
        uint64_t b = le(p, 8);
        memcpy(&v->v.f, &b, 8);
        break;
    }
    case SM_GGUF_BOOL:
        if (p[0] > 1)
            return fail(r, "expected a bool (0 or 1), found %u", (size_t)(p - r->p), p[0]);
        v->v.u = p[0];
        break;
    default: return sm_error("%s: internal: not a scalar type", r->path);
    }
    return 0;
}

static int rd_value(reader *r, sm_gguf_vtype t, sm_gguf_value *v, int depth);

static int rd_array(reader *r, sm_gguf_value *v, int depth) {
    v->type = SM_GGUF_ARRAY;
    size_t at = r->pos;
    if (depth > GGUF_MAX_NESTING)
        return fail(r, "expected arrays nested at most %d deep", at, GGUF_MAX_NESTING);
    sm_gguf_vtype et = SM_GGUF_UINT8;
    uint64_t n = 0;
    if (rd_vtype(r, &et, "array element type") || rd_u64(r, &n, "array length")) return -1;
    v->v.arr.type = et;
    size_t es = gguf_vtype_size(et);
    size_t left = r->size - r->pos;
    uint64_t min = es ? es : et == SM_GGUF_STRING ? 8 : 12; /* string: length; array: type + count */
    if (n > left / min)
        return fail(r, "expected an array of %s that fits the %zu bytes left, found %llu elements", at + 4,
                    sm_gguf_vtype_name(et), left, (unsigned long long)n);
    if (es) {
        v->v.arr.data = malloc(n ? (size_t)n * es : 1);
        if (!v->v.arr.data) return fail(r, "out of memory", r->pos);
        v->v.arr.n = n;
        const uint8_t *p = r->p + r->pos;
        if (et == SM_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (p[i] > 1)
                    return fail(r, "expected a bool (0 or 1), found %u", r->pos + (size_t)i, p[i]);
        }
        /* packed little-endian in the file and in memory (our hosts are little-endian) */
        memcpy(v->v.arr.data, p, (size_t)n * es);
        r->pos += (size_t)n * es;
        return 0;
    }
    v->v.arr.items = calloc(n ? (size_t)n : 1, sizeof(sm_gguf_value));
    if (!v->v.arr.items) return fail(r, "out of memory", r->pos);
    v->v.arr.n = n;
    for (uint64_t i = 0; i < n; i++)
        if (rd_value(r, et, &v->v.arr.items[i], depth + 1)) return -1;
    return 0;
}

static int rd_value(reader *r, sm_gguf_vtype t, sm_gguf_value *v, int depth) {
    if (t == SM_GGUF_STRING) {
        v->type = SM_GGUF_STRING;
        return rd_string(r, &v->v.str.ptr, &v->v.str.len, GGUF_MAX_STRING_LEN, false, "string value");
    }
    if (t == SM_GGUF_ARRAY) return rd_array(r, v, depth);
    size_t es = gguf_vtype_size(t);
    if (need(r, es, sm_gguf_vtype_name(t))) return -1;
    if (scalar(r, r->p + r->pos, t, v)) return -1;
    r->pos += es;
    return 0;
}

static int rd_header(reader *r, sm_gguf *g, uint64_t *n_tensors, uint64_t *n_kv) {
    if (r->size < 4 || memcmp(r->p, GGUF_MAGIC, 4) != 0)
        return fail(r, "expected the GGUF magic \"GGUF\"%s", 0,
                    r->size < 4 ? ", but the file is shorter than 4 bytes" : "");
    r->pos = 4;
    if (rd_u32(r, &g->version, "GGUF version")) return -1;
    if (g->version == 1)
        return fail(r, "GGUF version 1 is not supported (expected version 2 or 3; re-convert the model with "
                       "a current tool)", 4);
    if (g->version && !(g->version & 0xffff))
        return fail(r, "expected GGUF version 2 or 3, found %u (a big-endian file? only little-endian GGUF "
                       "is supported)", 4, g->version);
    if (g->version != 2 && g->version != 3)
        return fail(r, "expected GGUF version 2 or 3, found %u", 4, g->version);
    if (rd_u64(r, n_tensors, "tensor count") || rd_u64(r, n_kv, "metadata count")) return -1;
    size_t left = r->size - r->pos;
    if (*n_kv > left / MIN_KV_BYTES)
        return fail(r, "expected a metadata count that fits the %zu bytes left, found %llu", 16, left,
                    (unsigned long long)*n_kv);
    if (*n_tensors > left / MIN_TENSOR_BYTES)
        return fail(r, "expected a tensor count that fits the %zu bytes left, found %llu", 8, left,
                    (unsigned long long)*n_tensors);
    return 0;
}

static int rd_kvs(reader *r, sm_gguf *g, uint64_t n_kv) {
    g->keys = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->keys);
    g->vals = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->vals);
    if (!g->keys || !g->vals) return sm_error("%s: out of memory for %llu keys", r->path, (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        size_t at = r->pos;
        uint64_t klen;
        if (rd_string(r, &g->keys[i], &klen, GGUF_MAX_KEY_LEN, true, "metadata key")) return -1;
        g->n_kv = (size_t)i + 1; /* keys[i] is owned from here on */
        if (klen == 0) return fail(r, "expected a non-empty metadata key", at);
        size_t prev = 0;
        int added = gguf_index_add(&g->kv_index, g->keys[i], (size_t)i, &prev);
        if (added < 0) return sm_error("%s: out of memory", r->path);
        if (added == 0) return fail(r, "expected unique keys, but '%s' repeats key %zu", at, g->keys[i], prev);
        r->ctx_kind = "key";
        r->ctx_name = g->keys[i];
        if (!strcmp(g->keys[i], GGUF_KEY_ALIGNMENT)) r->align_at = r->pos;
        sm_gguf_vtype t = SM_GGUF_UINT8;
        if (rd_vtype(r, &t, "metadata value type") || rd_value(r, t, &g->vals[i], 1)) return -1;
        r->ctx_kind = NULL;
    }
    return 0;
}

static int set_alignment(reader *r, sm_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const sm_gguf_value *a = sm_gguf_find(g, GGUF_KEY_ALIGNMENT);
    if (!a) return 0;
    if (a->type != SM_GGUF_UINT32)
        return fail(r, "expected %s of type u32, found %s", r->align_at, GGUF_KEY_ALIGNMENT,
                    sm_gguf_vtype_name(a->type));
    if (a->v.u == 0 || (a->v.u & (a->v.u - 1)))
        return fail(r, "expected %s to be a non-zero power of two, found %llu", r->align_at + 4,
                    GGUF_KEY_ALIGNMENT, (unsigned long long)a->v.u);
    g->alignment = a->v.u;
    return 0;
}

/* One tensor info; also computes the byte size. The offset is checked later. */
static int rd_tensor_info(reader *r, sm_gguf *g, size_t i, uint64_t *offset) {
    sm_tensor *t = &g->tensors[i];
    size_t at = r->pos;
    uint64_t nlen;
    if (rd_string(r, &g->names[i], &nlen, GGUF_MAX_KEY_LEN, true, "tensor name")) return -1;
    g->n_tensors = i + 1;
    t->name = g->names[i];
    if (nlen == 0) return fail(r, "expected a non-empty tensor name", at);
    size_t prev = 0;
    int added = gguf_index_add(&g->tensor_index, t->name, i, &prev);
    if (added < 0) return sm_error("%s: out of memory", r->path);
    if (added == 0) return fail(r, "expected unique tensor names, but '%s' repeats tensor %zu", at, t->name, prev);
    r->ctx_kind = "tensor";
    r->ctx_name = t->name;
    at = r->pos;
    uint32_t n_dims;
    if (rd_u32(r, &n_dims, "tensor n_dims")) return -1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return fail(r, "expected 1..%d dimensions, found %u", at, GGUF_MAX_DIMS, n_dims);
    t->n_dims = (int)n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    int64_t nel = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < n_dims; d++) {
        at = r->pos;
        uint64_t v;
        if (rd_u64(r, &v, "tensor dimension")) return -1;
        if (v > (uint64_t)INT64_MAX)
            return fail(r, "expected dimension %u >= 0, found %lld", at, d, (long long)(int64_t)v);
        ne[d] = (int64_t)v;
        overflow |= __builtin_mul_overflow(nel, ne[d], &nel);
        t->shape[n_dims - 1 - d] = ne[d];
    }
    if (overflow) return fail(r, "expected an element count below 2^63", at);
    at = r->pos;
    uint32_t type;
    if (rd_u32(r, &type, "tensor type")) return -1;
    const sm_type_info *ti = sm_type_get((sm_type)type);
    if (!ti || !ti->in_ggml) return fail(r, "expected a known ggml type, found %u", at, type);
    t->type = (sm_type)type;
    if (ne[0] % ti->block_size)
        return fail(r, "expected a row length that is a multiple of %s's block size %d, found %lld", at, ti->name,
                    ti->block_size, (long long)ne[0]);
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)(nel / ti->block_size), (uint64_t)ti->block_bytes, &nbytes))
        return fail(r, "expected a size in bytes below 2^64", at);
    t->nbytes = nbytes;
    if (rd_u64(r, offset, "tensor data offset")) return -1;
    r->ctx_kind = NULL;
    return 0;
}

typedef struct { uint64_t off; size_t i; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int rd_tensors(reader *r, sm_gguf *g, uint64_t n) {
    g->tensors = calloc(n ? (size_t)n : 1, sizeof *g->tensors);
    g->names = calloc(n ? (size_t)n : 1, sizeof *g->names);
    span *sp = calloc(n ? (size_t)n : 1, sizeof *sp);
    if (!g->tensors || !g->names || !sp) {
        free(sp);
        return sm_error("%s: out of memory for %llu tensors", r->path, (unsigned long long)n);
    }
    size_t *off_at = calloc(n ? (size_t)n : 1, sizeof *off_at); /* where each offset field is */
    if (!off_at) {
        free(sp);
        return sm_error("%s: out of memory", r->path);
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sp[i].i = i;
        rc = rd_tensor_info(r, g, i, &sp[i].off);
        off_at[i] = r->pos - 8;
    }
    if (rc) goto done;
    /* the data section starts at the next multiple of the alignment */
    g->data_offset = ((uint64_t)r->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n && g->data_offset > r->size) {
        rc = fail(r, "expected padding up to the data section at offset %llu, but the file ends", r->pos,
                  (unsigned long long)g->data_offset);
        goto done;
    }
    uint64_t data_size = n ? r->size - g->data_offset : 0;
    r->ctx_kind = "tensor";
    for (size_t i = 0; i < n; i++) {
        sm_tensor *t = &g->tensors[i];
        uint64_t off = sp[i].off;
        r->ctx_name = t->name;
        if (off % g->alignment) {
            rc = fail(r, "expected a data offset that is a multiple of the alignment %llu, found %llu", off_at[i],
                      (unsigned long long)g->alignment, (unsigned long long)off);
            goto done;
        }
        if (off > data_size || t->nbytes > data_size - off) {
            rc = fail(r, "expected %llu bytes of data at file offset %llu, but the file has %zu bytes", off_at[i],
                      (unsigned long long)t->nbytes, (unsigned long long)(g->data_offset + off), r->size);
            goto done;
        }
        t->data = r->p + g->data_offset + off;
    }
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    for (size_t k = 1; k < n; k++) {
        const sm_tensor *a = &g->tensors[sp[k - 1].i], *b = &g->tensors[sp[k].i];
        if (sp[k - 1].off + a->nbytes > sp[k].off) {
            r->ctx_name = b->name;
            rc = fail(r, "expected data not overlapping tensor '%s' (bytes %llu..%llu of the data section), "
                         "found offset %llu", off_at[sp[k].i], a->name, (unsigned long long)sp[k - 1].off,
                      (unsigned long long)(sp[k - 1].off + a->nbytes), (unsigned long long)sp[k].off);
            goto done;
        }
    }
done:
    r->ctx_kind = NULL;
    free(sp);
    free(off_at);
    return rc;
}

static int parse(sm_gguf *g) {
    reader r = {.p = g->base, .size = g->size, .path = g->path};
    uint64_t n_tensors = 0, n_kv = 0;
    if (rd_header(&r, g, &n_tensors, &n_kv)) return -1;
    if (rd_kvs(&r, g, n_kv)) return -1;
    if (set_alignment(&r, g)) return -1;
    return rd_tensors(&r, g, n_tensors);
}

static int open_common(sm_gguf *g, sm_gguf **out) {
    if (parse(g)) {
        sm_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

bool sm_gguf_is_file(const char *path) {
    if (!sm_is_file(path)) return false;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    const bool yes = fread(magic, 1, 4, f) == 4 && memcmp(magic, GGUF_MAGIC, 4) == 0;
    fclose(f);
    if (yes) return true;
    const char *inner = sm_smelt_inner_kind(path); /* a .smelt of a GGUF reads as that GGUF */
    return inner && !strcmp(inner, "gguf");
}

static int open_one(const char *path, sm_gguf **out) {
    *out = NULL;
    sm_gguf *g = calloc(1, sizeof *g);
    if (!g) return sm_error("%s: out of memory", path);
    g->path = strdup(path);
    if (!g->path || sm_smelt_mmap_open(&g->map, path)) { /* a .smelt of a GGUF: its GGUF */
        if (!g->path) sm_error("%s: out of memory", path);
        sm_gguf_close(g);
        return -1;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(g, out);
}

/* split.no / split.count of a file (0 / 0 when it is not a split part). */
static int split_keys(const sm_gguf *g, uint64_t *no, uint64_t *count) {
    *no = *count = 0;
    if (!sm_gguf_find(g, "split.count")) return 0;
    if (sm_gguf_get_u64(g, "split.count", count)) return -1;
    if (*count > 1 && sm_gguf_get_u64(g, "split.no", no)) return -1;
    return 0;
}

/* A split set (llama.cpp's llama-gguf-split layout, see sink_gguf.c) opened from its first
 * part: the other parts' tensors are appended, in part order, as one model. */
static int open_parts(sm_gguf *g, uint64_t count) {
    const char *path = g->path;
    char tail[64];
    snprintf(tail, sizeof tail, "-%05d-of-%05d.gguf", 1, (int)count);
    size_t n = strlen(path), nt = strlen(tail);
    if (n <= nt || strcmp(path + n - nt, tail))
        return sm_error("%s: part 1 of a split set of %llu files, but the name does not end in %s", path,
                        (unsigned long long)count, tail);
    g->parts = calloc((size_t)count, sizeof *g->parts);
    if (!g->parts) return sm_error("%s: out of memory", path);
    uint64_t total = 0;
    if (sm_gguf_find(g, "split.tensors.count") && sm_gguf_get_u64(g, "split.tensors.count", &total)) return -1;
    for (uint64_t i = 1; i < count; i++) {
        char *prefix = strndup(path, n - nt), *pp = prefix ? sm_split_path(prefix, (int)i, (int)count) : NULL;
        free(prefix);
        if (!pp) return sm_error("%s: out of memory", path);
        sm_gguf *p = NULL;
        int rc = open_one(pp, &p);
        uint64_t no = 0, cnt = 0;
        if (!rc) g->parts[g->n_parts++] = p;
        if (!rc) rc = split_keys(p, &no, &cnt);
        if (!rc && (no != i || cnt != count))
            rc = sm_error("%s: split.no %llu of %llu, expected part %llu of %llu (the set of %s)", pp,
                          (unsigned long long)no, (unsigned long long)cnt, (unsigned long long)i,
                          (unsigned long long)count, path);
        if (rc) {
            if (!sm_is_file(pp)) sm_error("%s: part %llu of the split set %s is missing", pp, (unsigned long long)i + 1, path);
            free(pp);
            return -1;
        }
        free(pp);
        sm_tensor *ts = realloc(g->tensors, (g->n_tensors + p->n_tensors) * sizeof *ts);
        char **ns = ts ? realloc(g->names, (g->n_tensors + p->n_tensors) * sizeof *ns) : NULL;
        if (ts) g->tensors = ts;
        if (ns) g->names = ns;
        if (!ts || !ns) return sm_error("%s: out of memory", path);
        for (size_t k = 0; k < p->n_tensors; k++) {
            size_t prev = 0, at = g->n_tensors;
            g->tensors[at] = p->tensors[k];
            g->names[at] = NULL; /* owned by the part */
            int added = gguf_index_add(&g->tensor_index, p->tensors[k].name, at, &prev);
            if (added <= 0)
                return added < 0 ? sm_error("%s: out of memory", path)
                                 : sm_error("%s: tensor '%s' is in part %llu and again in an earlier part", p->path,
                                            p->tensors[k].name, (unsigned long long)i + 1);
            g->n_tensors++;
        }
    }
    if (total && total != g->n_tensors)
        return sm_error("%s: split.tensors.count is %llu, but the %llu parts hold %zu tensors", path,
                        (unsigned long long)total, (unsigned long long)count, g->n_tensors);
    return 0;
}

int sm_gguf_open(const char *path, sm_gguf **out) {
    sm_gguf *g;
    if (open_one(path, &g)) return -1;
    uint64_t no, count;
    int rc = split_keys(g, &no, &count);
    if (!rc && count > 1 && no != 0)
        rc = sm_error("%s: part %llu of a split set of %llu; open the first part (...-00001-of-%05llu.gguf)", path,
                      (unsigned long long)no + 1, (unsigned long long)count, (unsigned long long)count);
    if (!rc && count > 1) rc = open_parts(g, count);
    if (rc) {
        sm_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int sm_gguf_open_mem(const void *data, size_t size, const char *name, sm_gguf **out) {
    *out = NULL;
    if (!name) name = "<memory>";
    sm_gguf *g = calloc(1, sizeof *g);
    if (!g) return sm_error("%s: out of memory", name);
    g->path = strdup(name);
    if (!g->path) {
        free(g);
        return sm_error("%s: out of memory", name);
    }
    g->base = data;
    g->size = data ? size : 0;
    return open_common(g, out);
}

void sm_gguf_close(sm_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->keys[i]);
        gguf_value_clear(&g->vals[i]);
    }
    free(g->keys);
    free(g->vals);
    for (size_t i = 0; i < g->n_tensors; i++) free(g->names[i]);
    free(g->names);
    free(g->tensors);
    gguf_index_free(&g->kv_index);
    gguf_index_free(&g->tensor_index);
    for (size_t i = 0; i < g->n_parts; i++) sm_gguf_close(g->parts[i]);
    free(g->parts);
    sm_mmap_close(&g->map);
    free(g->path);
    free(g);
}

void sm_gguf_release(const sm_gguf *g, const void *p, uint64_t n) {
    if (!g) return;
    sm_mmap_release(&g->map, p, n); /* each mapping releases only what lies inside it */
    for (size_t i = 0; i < g->n_parts; i++) sm_mmap_release(&g->parts[i]->map, p, n);
}

uint32_t sm_gguf_version(const sm_gguf *g) { return g->version; }
uint64_t sm_gguf_alignment(const sm_gguf *g) { return g->alignment; }
uint64_t sm_gguf_data_offset(const sm_gguf *g) { return g->data_offset; }
uint64_t sm_gguf_tensor_file_offset(const sm_gguf *g, const sm_tensor *t) {
    const uint8_t *d = t->data;
    for (size_t i = 0; i < g->n_parts; i++) /* in its own part's file */
        if (d >= g->parts[i]->base && d < g->parts[i]->base + g->parts[i]->size) return (uint64_t)(d - g->parts[i]->base);
    return (uint64_t)(d - g->base);
}
const char *sm_gguf_path(const sm_gguf *g) { return g->path; }
size_t sm_gguf_n_kv(const sm_gguf *g) { return g->n_kv; }
const char *sm_gguf_key(const sm_gguf *g, size_t i) { return i < g->n_kv ? g->keys[i] : NULL; }
const sm_gguf_value *sm_gguf_val(const sm_gguf *g, size_t i) { return i < g->n_kv ? &g->vals[i] : NULL; }
size_t sm_gguf_n_tensors(const sm_gguf *g) { return g->n_tensors; }
const sm_tensor *sm_gguf_tensor(const sm_gguf *g, size_t i) { return i < g->n_tensors ? &g->tensors[i] : NULL; }

const sm_gguf_value *sm_gguf_find(const sm_gguf *g, const char *key) {
    long long i = gguf_index_find(&g->kv_index, key);
    return i < 0 ? NULL : &g->vals[i];
}

const sm_tensor *sm_gguf_find_tensor(const sm_gguf *g, const char *name) {
    long long i = gguf_index_find(&g->tensor_index, name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* ---- typed getters ---- */

static const sm_gguf_value *lookup(const sm_gguf *g, const char *key) {
    const sm_gguf_value *v = sm_gguf_find(g, key);
    if (!v) sm_error("%s: metadata key '%s' is missing", g->path, key);
    return v;
}

static int wrong_type(const sm_gguf *g, const char *key, const sm_gguf_value *v, const char *want) {
    return sm_error("%s: metadata key '%s': expected %s, found %s", g->path, key, want, sm_gguf_vtype_name(v->type));
}

static bool is_unsigned(sm_gguf_vtype t) {
    return t == SM_GGUF_UINT8 || t == SM_GGUF_UINT16 || t == SM_GGUF_UINT32 || t == SM_GGUF_UINT64;
}

static bool is_signed(sm_gguf_vtype t) {
    return t == SM_GGUF_INT8 || t == SM_GGUF_INT16 || t == SM_GGUF_INT32 || t == SM_GGUF_INT64;
}

int sm_gguf_get_u64(const sm_gguf *g, const char *key, uint64_t *out) {
    const sm_gguf_value *v = lookup(g, key);
    if (!v) return -1;
    if (is_unsigned(v->type)) {
        *out = v->v.u;
        return 0;
    }
    if (!is_signed(v->type)) return wrong_type(g, key, v, "an integer");
    if (v->v.i < 0)
        return sm_error("%s: metadata key '%s': expected a non-negative integer, found %lld", g->path, key,
                        (long long)v->v.i);
    *out = (uint64_t)v->v.i;
    return 0;
}

int sm_gguf_get_i64(const sm_gguf *g, const char *key, int64_t *out) {
    const sm_gguf_value *v = lookup(g, key);
    if (!v) return -1;
    if (is_signed(v->type)) {
        *out = v->v.i;
        return 0;
    }
    if (!is_unsigned(v->type)) return wrong_type(g, key, v, "an integer");
    if (v->v.u > (uint64_t)INT64_MAX)
        return sm_error("%s: metadata key '%s': expected an integer below 2^63, found %llu", g->path, key,
                        (unsigned long long)v->v.u);
    *out = (int64_t)v->v.u;
    return 0;
}

int sm_gguf_get_f64(const sm_gguf *g, const char *key, double *out) {
    const sm_gguf_value *v = lookup(g, key);
    if (!v) return -1;
    if (v->type != SM_GGUF_FLOAT32 && v->type != SM_GGUF_FLOAT64) return wrong_type(g, key, v, "f32 or f64");
    *out = v->v.f;
    return 0;
}

int sm_gguf_get_bool(const sm_gguf *g, const char *key, bool *out) {
    const sm_gguf_value *v = lookup(g, key);
    if (!v) return -1;
    if (v->type != SM_GGUF_BOOL) return wrong_type(g, key, v, "bool");
    *out = v->v.u != 0;
    return 0;
}

const char *sm_gguf_get_str(const sm_gguf *g, const char *key) {
    const sm_gguf_value *v = sm_gguf_find(g, key);
    return v && v->type == SM_GGUF_STRING ? v->v.str.ptr : NULL;
}

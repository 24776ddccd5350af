/* gguf_write.c - streaming GGUF v3 writer.
 *
 * Metadata and tensor declarations are kept in memory (small); tensor data never is: begin
 * writes the header, the metadata, the tensor infos and the padding, then each write call
 * passes tensor bytes straight to the output file, padding after every tensor. The output
 * goes through sm_outfile (temporary + rename), so an aborted or failed write leaves nothing.
 * The layout is exactly ggml's gguf_write_to_file: keys in first-set order, tensors in
 * declaration order, each tensor's offset a multiple of general.alignment. */
#include "gguf_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct wtensor {
    char *name;
    sm_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* innermost first, as in the file */
    uint64_t nbytes, offset;
} wtensor;

struct sm_gguf_writer {
    sm_meta *meta;
    bool own_meta;
    size_t n_t, cap_t;
    wtensor *t;
    gguf_index tindex;
    sm_outfile *out;  /* non-NULL between begin and finish/abort (or, instead, emit) */
    sm_gguf_emit_fn emit; /* sm_gguf_writer_begin_fn: the bytes go here instead */
    void *emit_ctx;
    uint64_t pos;         /* bytes written */
    uint64_t alignment;
    size_t cur;       /* tensor being written */
    uint64_t cur_done;
    bool failed;      /* a write failed: finish must not commit */
};

sm_gguf_writer *sm_gguf_writer_new_meta(sm_meta *meta) {
    sm_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) sm_error("out of memory");
    else w->meta = meta;
    return w;
}

sm_gguf_writer *sm_gguf_writer_new(void) {
    sm_meta *m = sm_meta_new();
    sm_gguf_writer *w = m ? sm_gguf_writer_new_meta(m) : NULL;
    if (w) w->own_meta = true;
    else sm_meta_free(m);
    return w;
}

sm_meta *sm_gguf_writer_meta(sm_gguf_writer *w) { return w ? w->meta : NULL; }

int sm_gguf_add_tensor(sm_gguf_writer *w, const char *name, sm_type type, int n_dims, const int64_t *shape) {
    if (!w) return sm_error("GGUF writer: NULL writer");
    if (w->out || w->emit) return sm_error("GGUF writer: tensor '%s' added after begin", name ? name : "");
    if (!name || !*name) return sm_error("GGUF writer: tensor name is empty");
    if (strlen(name) >= GGUF_MAX_NAME)
        return sm_error("GGUF writer: tensor name '%s' has %zu bytes; ggml allows at most %d", name, strlen(name),
                        GGUF_MAX_NAME - 1);
    const sm_type_info *ti = sm_type_get(type);
    if (!ti || !ti->in_ggml)
        return sm_error("GGUF writer: tensor '%s': type %s cannot be stored in GGUF", name, sm_type_name(type));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return sm_error("GGUF writer: tensor '%s': %d dimensions, expected 1..%d", name, n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = (uint32_t)n_dims};
    int64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        int64_t v = shape[n_dims - 1 - d];
        if (v < 1) return sm_error("GGUF writer: tensor '%s': dimension %d is %lld, expected >= 1", name, n_dims - 1 - d, (long long)v);
        t.ne[d] = v;
        if (__builtin_mul_overflow(nel, v, &nel))
            return sm_error("GGUF writer: tensor '%s': element count overflows", name);
    }
    if (t.ne[0] % ti->block_size)
        return sm_error("GGUF writer: tensor '%s': row length %lld is not a multiple of %s's block size %d", name,
                        (long long)t.ne[0], ti->name, ti->block_size);
    if (__builtin_mul_overflow(sm_type_row_bytes(type, t.ne[0]), (uint64_t)(nel / t.ne[0]), &t.nbytes))
        return sm_error("GGUF writer: tensor '%s': byte size overflows", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) return sm_error("GGUF writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    t.name = strdup(name);
    if (!t.name) return sm_error("GGUF writer: out of memory");
    size_t prev = 0;
    int added = gguf_index_add(&w->tindex, t.name, w->n_t, &prev);
    if (added <= 0) {
        free(t.name);
        return added < 0 ? sm_error("GGUF writer: out of memory")
                         : sm_error("GGUF writer: tensor '%s' declared twice (first as tensor %zu)", name, prev);
    }
    w->t[w->n_t++] = t;
    return 0;
}

/* ---- serialization ---- */

/* the output: the file, or the emit function */
static int wout(sm_gguf_writer *w, const void *p, size_t n) {
    w->pos += n;
    return w->emit ? w->emit(w->emit_ctx, p, n) : sm_outfile_write(w->out, p, n);
}

static int wpad(sm_gguf_writer *w, uint64_t alignment) {
    static const uint8_t zero[64];
    while (w->pos % alignment) {
        const uint64_t k = alignment - w->pos % alignment;
        if (wout(w, zero, (size_t)(k < sizeof zero ? k : sizeof zero))) return -1;
    }
    return 0;
}

static int put_le(sm_gguf_writer *o, uint64_t v, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    return wout(o, b, (size_t)n);
}

static int put_string(sm_gguf_writer *o, const char *s, uint64_t len) {
    return put_le(o, len, 8) || wout(o, s, (size_t)len);
}

static int put_value(sm_gguf_writer *o, const sm_gguf_value *v) {
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64: case SM_GGUF_BOOL:
        return put_le(o, v->v.u, (int)gguf_vtype_size(v->type));
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64:
        return put_le(o, (uint64_t)v->v.i, (int)gguf_vtype_size(v->type));
    case SM_GGUF_FLOAT32: {
        float f = (float)v->v.f;
        uint32_t b;
        memcpy(&b, &f, 4);
        return put_le(o, b, 4);
    }
    case SM_GGUF_FLOAT64: {
        uint64_t b;
        memcpy(&b, &v->v.f, 8);
        return put_le(o, b, 8);
    }
    case SM_GGUF_STRING: return put_string(o, v->v.str.ptr, v->v.str.len);
    case SM_GGUF_ARRAY: {
        if (put_le(o, (uint64_t)v->v.arr.type, 4) || put_le(o, v->v.arr.n, 8)) return -1;
        size_t es = gguf_vtype_size(v->v.arr.type);
        if (es) return wout(o, v->v.arr.data, (size_t)v->v.arr.n * es); /* little-endian host */
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            if (put_value(o, &v->v.arr.items[i])) return -1;
        return 0;
    }
    }
    return sm_error("GGUF writer: value of unknown type %d", (int)v->type);
}

static int write_head(sm_gguf_writer *w) {
    sm_gguf_writer *o = w;
    size_t n_kv = sm_meta_n(w->meta);
    if (wout(o, GGUF_MAGIC, 4) || put_le(o, GGUF_VERSION, 4) || put_le(o, w->n_t, 8) ||
        put_le(o, n_kv, 8))
        return -1;
    for (size_t i = 0; i < n_kv; i++) {
        const sm_gguf_value *v = sm_meta_val(w->meta, i);
        const char *key = sm_meta_key(w->meta, i);
        if (put_string(o, key, strlen(key)) || put_le(o, (uint64_t)v->type, 4) || put_value(o, v))
            return -1;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (put_string(o, t->name, strlen(t->name)) || put_le(o, t->n_dims, 4)) return -1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (put_le(o, (uint64_t)t->ne[d], 8)) return -1;
        if (put_le(o, (uint64_t)t->type, 4) || put_le(o, t->offset, 8)) return -1;
    }
    return wpad(o, w->alignment);
}

/* begin, writing through emit (NULL: to the file `path`) */
static int begin(sm_gguf_writer *w, const char *path, sm_gguf_emit_fn emit, void *ctx) {
    if (!w) return sm_error("%s: GGUF writer: NULL writer", path);
    if (w->out || w->emit) return sm_error("%s: GGUF writer: begin called twice", path);
    if (!w->meta) return sm_error("%s: GGUF writer: no metadata", path);
    if (sm_meta_error(w->meta)[0]) return sm_error("%s: GGUF writer: %s", path, sm_meta_error(w->meta));
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    const sm_gguf_value *a = sm_meta_find(w->meta, GGUF_KEY_ALIGNMENT);
    if (a) {
        if (a->type != SM_GGUF_UINT32)
            return sm_error("%s: GGUF writer: %s must be a u32, not %s", path, GGUF_KEY_ALIGNMENT,
                            sm_gguf_vtype_name(a->type));
        if (a->v.u == 0 || (a->v.u & (a->v.u - 1)))
            return sm_error("%s: GGUF writer: %s must be a non-zero power of two, not %llu", path,
                            GGUF_KEY_ALIGNMENT, (unsigned long long)a->v.u);
        w->alignment = a->v.u;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded = (w->t[i].nbytes + w->alignment - 1) / w->alignment * w->alignment;
        if (padded < w->t[i].nbytes || __builtin_add_overflow(off, padded, &off))
            return sm_error("%s: GGUF writer: data section size overflows", path);
    }
    if (emit) w->emit = emit, w->emit_ctx = ctx;
    else if (!(w->out = sm_outfile_open(path))) return -1;
    sm_meta_freeze(w->meta, true);
    w->cur = 0;
    w->cur_done = 0;
    if (write_head(w)) {
        w->failed = true;
        return -1;
    }
    return 0;
}

int sm_gguf_writer_begin(sm_gguf_writer *w, const char *path) { return begin(w, path, NULL, NULL); }

int sm_gguf_writer_begin_fn(sm_gguf_writer *w, const char *name, sm_gguf_emit_fn emit, void *ctx) {
    return begin(w, name, emit, ctx);
}

uint64_t sm_gguf_writer_tensor_offset(const sm_gguf_writer *w, size_t i) { return w->t[i].offset; }

int sm_gguf_writer_write(sm_gguf_writer *w, const void *data, uint64_t nbytes) {
    if (!w || !(w->out || w->emit)) return sm_error("GGUF writer: write before begin");
    if (w->failed) return sm_error("GGUF writer: write after a failed write");
    if (w->cur >= w->n_t) {
        w->failed = true;
        return sm_error("GGUF writer: %llu bytes written after all %zu tensors were complete",
                        (unsigned long long)nbytes, w->n_t);
    }
    wtensor *t = &w->t[w->cur];
    if (nbytes > t->nbytes - w->cur_done) {
        w->failed = true;
        return sm_error("GGUF writer: tensor '%s': %llu bytes written, but only %llu of its %llu bytes remain",
                        t->name, (unsigned long long)nbytes, (unsigned long long)(t->nbytes - w->cur_done),
                        (unsigned long long)t->nbytes);
    }
    if (nbytes > SIZE_MAX || wout(w, data, (size_t)nbytes)) {
        w->failed = true;
        return -1;
    }
    w->cur_done += nbytes;
    if (w->cur_done == t->nbytes) {
        w->cur++;
        w->cur_done = 0;
        if (wpad(w, w->alignment)) {
            w->failed = true;
            return -1;
        }
    }
    return 0;
}

static void free_writer(sm_gguf_writer *w) {
    if (w->own_meta) sm_meta_free(w->meta);
    else if (w->meta) sm_meta_freeze(w->meta, false);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    gguf_index_free(&w->tindex);
    free(w);
}

int sm_gguf_writer_end(sm_gguf_writer *w, sm_outfile **out) {
    *out = NULL;
    if (!w) return sm_error("GGUF writer: NULL writer");
    int rc = 0;
    if (!w->out && !w->emit) {
        rc = sm_error("GGUF writer: finish before begin");
    } else if (w->failed) {
        rc = sm_error("GGUF writer: not finishing after a failed write");
        sm_outfile_abort(w->out);
    } else if (sm_meta_error(w->meta)[0]) {
        rc = sm_error("GGUF writer: %s", sm_meta_error(w->meta));
        sm_outfile_abort(w->out);
    } else if (w->cur < w->n_t) {
        rc = sm_error("GGUF writer: tensor '%s' got %llu of its %llu bytes (%zu of %zu tensors complete)",
                      w->t[w->cur].name, (unsigned long long)w->cur_done, (unsigned long long)w->t[w->cur].nbytes,
                      w->cur, w->n_t);
        sm_outfile_abort(w->out);
    } else {
        *out = w->out;
    }
    w->out = NULL;
    free_writer(w);
    return rc;
}

int sm_gguf_writer_finish(sm_gguf_writer *w) {
    sm_outfile *o;
    if (sm_gguf_writer_end(w, &o)) return -1;
    return sm_outfile_commit(o);
}

void sm_gguf_writer_abort(sm_gguf_writer *w) {
    if (!w) return;
    sm_outfile_abort(w->out);
    w->out = NULL;
    free_writer(w);
}

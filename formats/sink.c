/* sink.c - the format-independent half of a tensor sink (see sink.h): declarations, metadata,
 * the order of writes, and the table of output formats. */
#include "formats/sink.h"
#include "gguf_internal.h"

#include <stdlib.h>
#include <string.h>

/* The output formats; an entry is NULL until its implementation is linked in. */
static const sm_sink_impl *const IMPLS[SM_SINK_N_FORMATS] = {
    [SM_SINK_GGUF] = &sm_sink_impl_gguf,
    [SM_SINK_SAFETENSORS] = &sm_sink_impl_safetensors,
    [SM_SINK_SMELT] = &sm_sink_impl_smelt,
};
static const char *const NAMES[SM_SINK_N_FORMATS] = {"gguf", "safetensors", "smelt"};

int sm_sink_format_parse(const char *s, sm_sink_format *out) {
    for (int i = 0; i < SM_SINK_N_FORMATS; i++)
        if (s && strcmp(s, NAMES[i]) == 0) {
            *out = (sm_sink_format)i;
            return 0;
        }
    return -1;
}

const char *sm_sink_format_name(sm_sink_format f) {
    return (unsigned)f < SM_SINK_N_FORMATS ? NAMES[f] : "?";
}

sm_sink *sm_sink_open(const char *path, const sm_sink_opts *opts) {
    sm_sink_opts o = opts ? *opts : (sm_sink_opts){0};
    if (!path || !*path) {
        sm_error("output path is empty");
        return NULL;
    }
    /* an output named *.smelt is written as .smelt (the option that names a format wins) */
    const size_t len = strlen(path);
    if (o.format == SM_SINK_GGUF && len > 6 && !strcmp(path + len - 6, ".smelt") && !o.split_max_bytes &&
        !o.split_max_tensors)
        o.format = SM_SINK_SMELT;
    if ((unsigned)o.format >= SM_SINK_N_FORMATS || !IMPLS[o.format]) {
        sm_error("%s: output format %s is not supported by this build", path, sm_sink_format_name(o.format));
        return NULL;
    }
    if (o.format != SM_SINK_SMELT && (o.level || o.raw)) {
        sm_error("%s: --level / --raw apply to a .smelt output only, not %s (name the output *.smelt)", path,
                 sm_sink_format_name(o.format));
        return NULL;
    }
    if (o.format != SM_SINK_GGUF && (o.split_max_bytes || o.split_max_tensors)) {
        sm_error("%s: --split-max-size / --split-max-tensors apply to GGUF output only, not %s", path,
                 sm_sink_format_name(o.format));
        return NULL;
    }
    sm_sink *s = calloc(1, sizeof *s);
    if (s) s->path = strdup(path);
    if (s) s->meta = sm_meta_new();
    if (!s || !s->path || !s->meta) {
        sm_sink_close(s);
        sm_error("out of memory");
        return NULL;
    }
    s->opts = o;
    s->impl_ops = IMPLS[o.format];
    return s;
}

sm_meta *sm_sink_meta(sm_sink *s) { return s ? s->meta : NULL; }

int sm_sink_add(sm_sink *s, const char *name, sm_type type, int n_dims, const int64_t *shape) {
    if (!s) return sm_error("sink: NULL sink");
    if (s->state != 0) return sm_error("%s: tensor '%s' declared after the output began", s->path, name ? name : "");
    if (!name || !*name) return sm_error("%s: tensor name is empty", s->path);
    const sm_type_info *ti = sm_type_get(type);
    if (!ti) return sm_error("%s: tensor '%s': unknown type %d", s->path, name, (int)type);
    if (n_dims < 1 || n_dims > SM_MAX_DIMS)
        return sm_error("%s: tensor '%s': %d dimensions, expected 1..%d", s->path, name, n_dims, SM_MAX_DIMS);
    sm_sink_tensor t = {.type = type, .n_dims = n_dims};
    int64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 1)
            return sm_error("%s: tensor '%s': dimension %d is %lld, expected >= 1", s->path, name, d,
                            (long long)shape[d]);
        t.shape[d] = shape[d];
        if (__builtin_mul_overflow(nel, shape[d], &nel))
            return sm_error("%s: tensor '%s': element count overflows", s->path, name);
    }
    int64_t row = shape[n_dims - 1];
    if (row % ti->block_size)
        return sm_error("%s: tensor '%s': row length %lld is not a multiple of %s's block size %d", s->path, name,
                        (long long)row, ti->name, ti->block_size);
    if (__builtin_mul_overflow(sm_type_row_bytes(type, row), (uint64_t)(nel / row), &t.nbytes))
        return sm_error("%s: tensor '%s': byte size overflows", s->path, name);
    for (size_t i = 0; i < s->n_tensors; i++) /* small counts; the format writers index names */
        if (strcmp(s->tensors[i].name, name) == 0)
            return sm_error("%s: tensor '%s' declared twice (first as tensor %zu)", s->path, name, i);
    if (s->n_tensors == s->cap_tensors) {
        size_t cap = s->cap_tensors ? s->cap_tensors * 2 : 64;
        sm_sink_tensor *nt = realloc(s->tensors, cap * sizeof *nt);
        if (!nt) return sm_error("out of memory");
        s->tensors = nt;
        s->cap_tensors = cap;
    }
    t.name = strdup(name);
    if (!t.name) return sm_error("out of memory");
    s->tensors[s->n_tensors++] = t;
    return 0;
}

int sm_sink_begin(sm_sink *s) {
    if (!s) return sm_error("sink: NULL sink");
    if (s->state != 0) return sm_error("%s: sink: begin called twice", s->path);
    if (sm_meta_error(s->meta)[0]) {
        s->state = -1;
        return sm_error("%s: %s", s->path, sm_meta_error(s->meta));
    }
    sm_meta_freeze(s->meta, true);
    s->state = 1;
    s->cur = 0;
    s->cur_done = 0;
    if (s->impl_ops->begin(s)) {
        s->state = -1;
        return -1;
    }
    return 0;
}

int sm_sink_write(sm_sink *s, const void *data, uint64_t nbytes) {
    if (!s || s->state != 1) return sm_error("%s: sink: write outside begin..finish", s ? s->path : "?");
    if (s->cur >= s->n_tensors) {
        s->state = -1;
        return sm_error("%s: %llu bytes written after all %zu tensors were complete", s->path,
                        (unsigned long long)nbytes, s->n_tensors);
    }
    const sm_sink_tensor *t = &s->tensors[s->cur];
    if (nbytes > t->nbytes - s->cur_done) {
        s->state = -1;
        return sm_error("%s: tensor '%s': %llu bytes written, but only %llu of its %llu bytes remain", s->path,
                        t->name, (unsigned long long)nbytes, (unsigned long long)(t->nbytes - s->cur_done),
                        (unsigned long long)t->nbytes);
    }
    if (s->impl_ops->write(s, s->cur, s->cur_done, data, nbytes)) {
        s->state = -1;
        return -1;
    }
    s->cur_done += nbytes;
    if (s->cur_done == t->nbytes) {
        s->cur++;
        s->cur_done = 0;
    }
    return 0;
}

int sm_sink_finish(sm_sink *s) {
    if (!s) return sm_error("sink: NULL sink");
    if (s->state != 1) return sm_error("%s: sink: finish without a successful begin and writes", s->path);
    if (s->cur < s->n_tensors) {
        s->state = -1;
        return sm_error("%s: tensor '%s' got %llu of its %llu bytes (%zu of %zu tensors complete)", s->path,
                        s->tensors[s->cur].name, (unsigned long long)s->cur_done,
                        (unsigned long long)s->tensors[s->cur].nbytes, s->cur, s->n_tensors);
    }
    if (s->impl_ops->finish(s)) {
        s->state = -1;
        return -1;
    }
    s->state = 2;
    return 0;
}

size_t sm_sink_n_files(const sm_sink *s) { return s ? s->n_files : 0; }
const char *sm_sink_file(const sm_sink *s, size_t i) { return s && i < s->n_files ? s->files[i] : NULL; }

int sm_sink_add_file(sm_sink *s, const char *path) {
    char **f = realloc(s->files, (s->n_files + 1) * sizeof *f);
    if (!f) return sm_error("out of memory");
    s->files = f;
    if (!(f[s->n_files] = strdup(path))) return sm_error("out of memory");
    s->n_files++;
    if (s->opts.on_file) s->opts.on_file(s->opts.on_file_ctx, path);
    return 0;
}

void sm_sink_close(sm_sink *s) {
    if (!s) return;
    if (s->impl_ops) s->impl_ops->abort(s); /* after a successful finish there is nothing left to remove */
    for (size_t i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    free(s->tensors);
    for (size_t i = 0; i < s->n_files; i++) free(s->files[i]);
    free(s->files);
    sm_meta_free(s->meta);
    free(s->path);
    free(s);
}

/* ---- split naming (llama.cpp's llama_split_path / the prefix gguf-split is given) ---- */

char *sm_split_path(const char *prefix, int i, int n) {
    char *p = NULL;
    if (asprintf(&p, "%s-%05d-of-%05d.gguf", prefix, i + 1, n) < 0) {
        sm_error("out of memory");
        return NULL;
    }
    return p;
}

char *sm_split_prefix_of(const char *out_path) {
    size_t n = strlen(out_path);
    if (n > 5 && strcmp(out_path + n - 5, ".gguf") == 0) n -= 5;
    char *p = strndup(out_path, n);
    if (!p) sm_error("out of memory");
    return p;
}

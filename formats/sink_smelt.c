/* sink_smelt.c - the .smelt output format of the tensor sink (sink.h): the GGUF the GGUF sink
 * would write is serialized (sm_gguf_writer_begin_fn) straight into the streaming .smelt writer
 * (smelt_stream.c), which compresses each tensor's chunks as they arrive; no intermediate file.
 * The .smelt holds one file named after the target (X.smelt holds X.gguf), and its bytes are
 * exactly what `smelt pack X.gguf` writes (without a command line), so `smelt unpack` gives the
 * GGUF the same command writes without .smelt. The output is atomic (temporary + rename);
 * memory: one batch of chunks and the GGUF's header. */
#include "formats/sink.h"
#include "formats/smelt_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct smelt_sink {
    sm_gguf_writer *w;
    smelt_stream *st;
} smelt_sink;

static int emit(void *ctx, const void *data, size_t n) { return smelt_stream_feed(ctx, data, n); }

/* "DIR/X.smelt" -> "X.gguf" */
static char *inner_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 6 && !strcmp(b + n - 6, ".smelt")) n -= 6;
    char *s = malloc(n + 6);
    if (s) memcpy(s, b, n), memcpy(s + n, ".gguf", 6);
    return s;
}

static int begin(sm_sink *s) {
    smelt_sink *k = calloc(1, sizeof *k);
    if (!k) return sm_error("out of memory");
    s->impl = k;
    char *name = inner_name(s->path);
    if (!name) return sm_error("out of memory");
    const sm_smelt_pack_opts o = {.level = s->opts.level, .raw = s->opts.raw};
    int rc = smelt_stream_open(&k->st, s->path, name, "gguf", &o);
    free(name);
    if (rc || !(k->w = sm_gguf_writer_new_meta(s->meta))) return -1;
    for (size_t i = 0; i < s->n_tensors; i++) {
        const sm_sink_tensor *t = &s->tensors[i];
        if (sm_gguf_add_tensor(k->w, t->name, t->type, t->n_dims, t->shape)) return -1;
    }
    if (sm_gguf_writer_begin_fn(k->w, s->path, emit, k->st)) return -1;
    const uint64_t data = smelt_stream_pos(k->st); /* the header is out: tensor data starts here */
    for (size_t i = 0; i < s->n_tensors; i++) {
        const sm_sink_tensor *t = &s->tensors[i];
        if (smelt_stream_tensor(k->st, t->name, t->type, t->n_dims, t->shape, data + sm_gguf_writer_tensor_offset(k->w, i),
                                t->nbytes))
            return -1;
    }
    return 0;
}

static int write_(sm_sink *s, size_t i, uint64_t offset, const void *data, uint64_t n) {
    (void)i, (void)offset;
    return sm_gguf_writer_write(((smelt_sink *)s->impl)->w, data, n);
}

static int finish(sm_sink *s) {
    smelt_sink *k = s->impl;
    sm_outfile *none;
    sm_gguf_writer *w = k->w;
    k->w = NULL;
    if (sm_gguf_writer_end(w, &none)) return -1;
    cJSON *model = cJSON_CreateObject(), *kv = model ? cJSON_AddObjectToObject(model, "gguf_metadata") : NULL;
    if (!kv) {
        cJSON_Delete(model);
        return sm_error("out of memory");
    }
    for (size_t i = 0; i < sm_meta_n(s->meta); i++) cJSON_AddItemToObject(kv, sm_meta_key(s->meta, i), smelt_value_json(sm_meta_val(s->meta, i)));
    if (smelt_stream_finish(k->st, model)) return -1;
    return sm_sink_add_file(s, s->path);
}

static void abort_(sm_sink *s) {
    smelt_sink *k = s->impl;
    if (!k) return;
    sm_gguf_writer_abort(k->w);
    smelt_stream_free(k->st);
    free(k);
    s->impl = NULL;
}

const sm_sink_impl sm_sink_impl_smelt = {"smelt", begin, write_, finish, abort_};

/* sink_safetensors.c - the safetensors sink: sm_st_writer behind the sink interface.
 * String metadata values become "__metadata__" entries (safetensors metadata is a string ->
 * string map); any other value type is refused at begin, as are types without a safetensors
 * dtype (block-quantized GGUF types). */
#include "formats/sink.h"

static int st_begin(sm_sink *s) {
    sm_st_writer *w = sm_st_writer_new();
    if (!w) return -1;
    s->impl = w;
    for (size_t i = 0; i < sm_meta_n(s->meta); i++) {
        const sm_gguf_value *v = sm_meta_val(s->meta, i);
        if (v->type != SM_GGUF_STRING)
            return sm_error("%s: metadata key '%s' is a %s; safetensors metadata holds strings only", s->path,
                            sm_meta_key(s->meta, i), sm_gguf_vtype_name(v->type));
        if (sm_st_writer_set_metadata(w, sm_meta_key(s->meta, i), v->v.str.ptr)) return -1;
    }
    for (size_t i = 0; i < s->n_tensors; i++) {
        const sm_sink_tensor *t = &s->tensors[i];
        if (sm_st_writer_add(w, t->name, t->type, t->n_dims, t->shape)) return -1;
    }
    return sm_st_writer_begin(w, s->path);
}

static int st_write(sm_sink *s, size_t i, uint64_t offset, const void *data, uint64_t n) {
    return sm_st_writer_write(s->impl, data, n);
}

static int st_finish(sm_sink *s) {
    sm_st_writer *w = s->impl;
    s->impl = NULL;
    return sm_st_writer_finish(w) || sm_sink_add_file(s, s->path) ? -1 : 0;
}

static void st_abort(sm_sink *s) {
    sm_st_writer_abort(s->impl);
    s->impl = NULL;
}

const sm_sink_impl sm_sink_impl_safetensors = {"safetensors", st_begin, st_write, st_finish, st_abort};

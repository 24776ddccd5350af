/* sink_smelt.c - the .smelt output format of the tensor sink (sink.h): the GGUF the GGUF sink
 * would write goes to a temporary beside the target, and finish packs it into the .smelt (atomic:
 * temporary + rename) and removes it. So `smelt unpack` of the result gives exactly the GGUF the
 * same command writes without it, and the .smelt header's model metadata is the GGUF's. Memory
 * stays bounded (both steps stream); disk holds the GGUF and the .smelt until finish. */
#include "formats/sink.h"
#include "formats/smelt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct smelt_sink {
    sm_sink *gguf;  /* the inner GGUF sink */
    char *tmp;      /* its file */
    int tmp_slot;   /* sm_tmp_register's, once the file exists */
    bool tmp_exists;
} smelt_sink;

static int begin(sm_sink *s) {
    smelt_sink *k = calloc(1, sizeof *k);
    if (!k) return sm_error("out of memory");
    s->impl = k;
    k->tmp_slot = -1;
    const size_t n = strlen(s->path) + 48;
    if (!(k->tmp = malloc(n))) return sm_error("out of memory");
    snprintf(k->tmp, n, "%s.gguf.%ld.tmp", s->path, (long)getpid());
    const sm_sink_opts o = {.format = SM_SINK_GGUF};
    if (!(k->gguf = sm_sink_open(k->tmp, &o))) return -1;
    sm_meta_set_all(sm_sink_meta(k->gguf), s->meta);
    for (size_t i = 0; i < s->n_tensors; i++) {
        const sm_sink_tensor *t = &s->tensors[i];
        if (sm_sink_add(k->gguf, t->name, t->type, t->n_dims, t->shape)) return -1;
    }
    return sm_sink_begin(k->gguf);
}

static int write_(sm_sink *s, size_t i, uint64_t offset, const void *data, uint64_t n) {
    (void)i, (void)offset;
    return sm_sink_write(((smelt_sink *)s->impl)->gguf, data, n);
}

static int finish(sm_sink *s) {
    smelt_sink *k = s->impl;
    if (sm_sink_finish(k->gguf)) return -1;
    k->tmp_exists = true;
    k->tmp_slot = sm_tmp_register(k->tmp, false);
    const sm_smelt_pack_opts o = {.level = s->opts.level, .raw = s->opts.raw, .quiet = true};
    if (sm_smelt_pack(k->tmp, s->path, &o)) return -1;
    return sm_sink_add_file(s, s->path);
}

static void abort_(sm_sink *s) {
    smelt_sink *k = s->impl;
    if (!k) return;
    sm_sink_close(k->gguf);
    if (k->tmp_exists) unlink(k->tmp);
    if (k->tmp_slot >= 0) sm_tmp_forget(k->tmp_slot);
    free(k->tmp);
    free(k);
    s->impl = NULL;
}

const sm_sink_impl sm_sink_impl_smelt = {"smelt", begin, write_, finish, abort_};

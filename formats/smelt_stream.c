/* smelt_stream.c - the streaming .smelt writer: one original file whose bytes arrive in file
 * order (the tensor sink's .smelt output, formats/sink_smelt.c), packed as they come.
 *
 * Packed: a tensor's bytes are cut into chunks as they arrive and queued to the packer (a
 * bounded batch, encoded in parallel, written in order); the bytes outside tensors (a GGUF's
 * header, metadata, tensor infos and padding: small) are kept and encoded after the last
 * tensor. Raw: the bytes go to the output as they come, after the 4096-byte alignment. Either
 * way the chunks, their order and the header are those sm_smelt_pack writes for the same file,
 * so the output is byte for byte the pack of the file the bytes make up. Memory: one batch of
 * chunks and the non-tensor bytes; no intermediate file. */
#include "formats/smelt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct smelt_stream {
    smelt_packer p;
    smelt_file f;
    bool raw;
    char *source_name, *command_line;
    cJSON *provenance;
    uint64_t pos;          /* bytes fed */
    size_t ti;             /* the tensor being fed (or the next one) */
    uint8_t *cbuf;         /* the chunk being filled (packed) */
    size_t cfill;
    uint8_t *rest;         /* the bytes outside tensors (packed) */
    size_t rest_n, rest_cap;
    XXH3_state_t *th, *fh; /* the tensor's and the file's checksums */
};

int smelt_stream_open(smelt_stream **out, const char *path, const char *file_name, const char *kind,
                      const sm_smelt_pack_opts *o) {
    smelt_stream *st = calloc(1, sizeof *st);
    *out = st;
    if (!st) return sm_error("out of memory");
    st->raw = o->raw;
    if (!(st->source_name = strdup(file_name)) || !(st->f.name = strdup(file_name)) || !(st->f.kind = strdup(kind)) ||
        (o->command_line && !(st->command_line = strdup(o->command_line))) ||
        (o->provenance && !(st->provenance = cJSON_Duplicate(o->provenance, true))) || !(st->th = XXH3_createState()) ||
        !(st->fh = XXH3_createState()))
        return sm_error("out of memory");
    XXH3_64bits_reset(st->fh);
    if (smelt_packer_init(&st->p, path, o->level, o->threads, o->chunk_size)) return -1;
    if (st->raw) {
        if (sm_outfile_pad_to(st->p.o, SMELT_RAW_ALIGN)) return -1;
        st->f.raw = true;
        st->f.off = sm_outfile_tell(st->p.o);
    }
    return 0;
}

void smelt_stream_free(smelt_stream *st) {
    if (!st) return;
    smelt_packer_free(&st->p);
    smelt_file_clear(&st->f);
    free(st->source_name);
    free(st->command_line);
    cJSON_Delete(st->provenance);
    free(st->cbuf);
    free(st->rest);
    XXH3_freeState(st->th);
    XXH3_freeState(st->fh);
    free(st);
}

uint64_t smelt_stream_pos(const smelt_stream *st) { return st->pos; }

int smelt_stream_tensor(smelt_stream *st, const char *name, sm_type type, int n_dims, const int64_t *shape,
                        uint64_t src_off, uint64_t nbytes) {
    const smelt_file *f = &st->f;
    const uint64_t end = f->n_tensors ? f->tensors[f->n_tensors - 1].src_off + f->tensors[f->n_tensors - 1].view.nbytes : 0;
    if (src_off < st->pos || src_off < end)
        return sm_error("%s: tensor '%s' at offset %llu: expected tensors in file order, after offset %llu", st->p.out_path,
                        name, (unsigned long long)src_off, (unsigned long long)(st->pos > end ? st->pos : end));
    if (smelt_file_add_tensor(&st->f, name, type, n_dims, shape, src_off, nbytes)) return -1;
    smelt_tensor *t = &st->f.tensors[st->f.n_tensors - 1];
    t->xxh = XXH3_64bits(NULL, 0);
    if (st->raw) {
        t->raw = true;
        t->off = st->f.off + src_off;
        return 0;
    }
    t->planes = smelt_planes_for(type, nbytes);
    return smelt_alloc_chunks(t, st->p.chunk);
}

/* bytes outside tensors */
static int gap(smelt_stream *st, const uint8_t *p, size_t n) {
    if (st->raw) return 0;
    if (st->rest_n + n > st->rest_cap) {
        size_t cap = st->rest_cap ? st->rest_cap : 65536;
        while (cap < st->rest_n + n) cap *= 2;
        uint8_t *r = realloc(st->rest, cap);
        if (!r) return sm_error("out of memory");
        st->rest = r, st->rest_cap = cap;
    }
    memcpy(st->rest + st->rest_n, p, n);
    st->rest_n += n;
    return 0;
}

/* bytes [at, at + n) of tensor t */
static int tensor_bytes(smelt_stream *st, smelt_tensor *t, uint64_t at, const uint8_t *p, size_t n) {
    if (at == 0) XXH3_64bits_reset(st->th);
    XXH3_64bits_update(st->th, p, n);
    const bool last = at + n == t->view.nbytes;
    if (last) t->xxh = XXH3_64bits_digest(st->th);
    while (!st->raw && n) {
        const size_t chunk = (size_t)st->p.chunk, c = (size_t)(at / chunk);
        const size_t want = (size_t)(t->view.nbytes - (uint64_t)c * chunk < chunk ? t->view.nbytes - (uint64_t)c * chunk : chunk);
        if (!st->cbuf && !(st->cbuf = malloc(chunk))) return sm_error("out of memory");
        const size_t k = n < want - st->cfill ? n : want - st->cfill;
        memcpy(st->cbuf + st->cfill, p, k);
        st->cfill += k, p += k, n -= k, at += k;
        if (st->cfill == want) {
            uint8_t *b = st->cbuf;
            st->cbuf = NULL, st->cfill = 0;
            if (smelt_packer_add(&st->p, t, b, b, want, t->planes, &t->chunks[c])) return -1;
        }
    }
    return 0;
}

int smelt_stream_feed(smelt_stream *st, const void *data, size_t n) {
    const uint8_t *p = data;
    if (st->raw && sm_outfile_write(st->p.o, p, n)) return -1;
    XXH3_64bits_update(st->fh, p, n);
    while (n) {
        while (st->ti < st->f.n_tensors && st->f.tensors[st->ti].src_off + st->f.tensors[st->ti].view.nbytes <= st->pos &&
               st->f.tensors[st->ti].src_off <= st->pos)
            st->ti++; /* complete (or empty) tensors */
        smelt_tensor *t = st->ti < st->f.n_tensors ? &st->f.tensors[st->ti] : NULL;
        size_t k;
        int rc;
        if (t && t->src_off <= st->pos) {
            const uint64_t left = t->src_off + t->view.nbytes - st->pos;
            k = (size_t)(left < n ? left : n);
            rc = tensor_bytes(st, t, st->pos - t->src_off, p, k);
        } else {
            const uint64_t left = t ? t->src_off - st->pos : UINT64_MAX;
            k = (size_t)(left < n ? left : n);
            rc = gap(st, p, k);
        }
        if (rc) return -1;
        p += k, n -= k, st->pos += k;
    }
    return 0;
}

int smelt_stream_finish(smelt_stream *st, cJSON *model) {
    smelt_file *f = &st->f;
    int rc = 0;
    f->size = st->pos;
    f->xxh = XXH3_64bits_digest(st->fh);
    for (size_t i = 0; i < f->n_tensors && !rc; i++) {
        const smelt_tensor *t = &f->tensors[i];
        if (t->src_off + t->view.nbytes > st->pos)
            rc = sm_error("%s: tensor '%s' got %llu of its %llu bytes", st->p.out_path, t->view.name,
                          (unsigned long long)(st->pos > t->src_off ? st->pos - t->src_off : 0),
                          (unsigned long long)t->view.nbytes);
    }
    if (!rc && !st->raw) { /* the rest, after every tensor's chunks (as pack does) */
        smelt_tensor *r = &f->rest;
        r->view.nbytes = st->rest_n;
        r->planes = SMELT_PLANES_NONE;
        r->xxh = XXH3_64bits(st->rest, st->rest_n);
        rc = smelt_alloc_chunks(r, st->p.chunk);
        for (size_t c = 0; c < r->n_chunks && !rc; c++) {
            const uint64_t o = c * st->p.chunk, n = r->view.nbytes - o < st->p.chunk ? r->view.nbytes - o : st->p.chunk;
            rc = smelt_packer_add(&st->p, NULL, st->rest + o, NULL, (size_t)n, SMELT_PLANES_NONE, &r->chunks[c]);
        }
        if (!rc) rc = smelt_packer_flush(&st->p);
    }
    cJSON *h = NULL;
    if (!rc && !(h = smelt_header_new(st->source_name, f->kind, st->command_line, model, st->provenance)))
        rc = sm_error("out of memory");
    else if (rc) cJSON_Delete(model);
    if (!rc) {
        cJSON_AddItemToArray(cJSON_GetObjectItem(h, "files"), smelt_file_json(f));
        rc = smelt_packer_commit(&st->p, h);
    }
    cJSON_Delete(h);
    return rc;
}

/* smelt_extract.c - decoding a .smelt: one tensor, a whole original file (streamed, chunks
 * decoded in parallel batches, every checksum checked on the way), verify, unpack, and the
 * mapping readers use to open a .smelt as the file it holds. */
#include "formats/smelt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define BATCH_PER_THREAD 4
#define RAW_PIECE ((uint64_t)16 << 20)

uint64_t smelt_chunk_raw(const smelt_tensor *t, size_t c) {
    const uint64_t o = (uint64_t)c * t->chunk_size;
    return t->view.nbytes - o < t->chunk_size ? t->view.nbytes - o : t->chunk_size;
}

/* "tensor 'x' of file 'y'" or "the bytes between the tensors of file 'y'" */
static void what(const smelt_file *f, const smelt_tensor *t, char *buf, size_t cap) {
    if (t == &f->rest) snprintf(buf, cap, "the bytes outside the tensors (header, padding) of file '%s'", f->name);
    else snprintf(buf, cap, "tensor '%s' of file '%s'", t->view.name, f->name);
}

static int chunk_error(const sm_smelt *s, const smelt_file *f, const smelt_tensor *t, size_t c, const char *msg) {
    char w[512];
    what(f, t, w, sizeof w);
    return sm_error("%s: %s, chunk %zu at offset %llu (%llu bytes): %s", s->path, w, c,
                    (unsigned long long)t->chunks[c].off, (unsigned long long)t->chunks[c].size, msg);
}

int smelt_hash_error(const sm_smelt *s, const smelt_file *f, const smelt_tensor *t, uint64_t got) {
    char w[512];
    what(f, t, w, sizeof w);
    const uint64_t off = t->raw ? t->off : t->n_chunks ? t->chunks[0].off : 0;
    return sm_error("%s: %s (stored at offset %llu, %llu bytes): checksum mismatch: xxh3-64 %016llx, the directory "
                    "says %016llx (the file is damaged)", s->path, w, (unsigned long long)off,
                    (unsigned long long)t->view.nbytes, (unsigned long long)got, (unsigned long long)t->xxh);
}

int smelt_decode_chunk(const sm_smelt *s, const smelt_file *f, const smelt_tensor *t, size_t c, void *dctx, uint8_t *dst,
                  uint8_t *scratch) {
    if (smelt_chunk_decode(dctx, t->planes, s->base + t->chunks[c].off, (size_t)t->chunks[c].size, dst,
                           (size_t)smelt_chunk_raw(t, c), scratch)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sm_last_error());
        return chunk_error(s, f, t, c, msg);
    }
    return 0;
}

int sm_smelt_read_tensor(const sm_smelt *s, size_t file, size_t i, void *dst) {
    const smelt_file *f = &s->files[file];
    const smelt_tensor *t = &f->tensors[i];
    if (t->raw) {
        memcpy(dst, s->base + t->off, (size_t)t->view.nbytes);
    } else {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        uint8_t *scratch = malloc(t->chunk_size);
        int rc = !d || !scratch ? sm_error("out of memory") : 0;
        for (size_t c = 0; c < t->n_chunks && !rc; c++)
            rc = smelt_decode_chunk(s, f, t, c, d, (uint8_t *)dst + c * t->chunk_size, scratch);
        ZSTD_freeDCtx(d);
        free(scratch);
        if (rc) return -1;
    }
    const uint64_t h = XXH3_64bits(dst, (size_t)t->view.nbytes);
    return h == t->xxh ? 0 : smelt_hash_error(s, f, t, h);
}

/* ---- streaming a whole file ---- */

typedef struct out_stream {
    sm_smelt_write_fn write;
    void *ctx;
    XXH3_state_t *file_h;
} out_stream;

static int emit(out_stream *o, const void *p, size_t n) {
    if (!n) return 0;
    XXH3_64bits_update(o->file_h, p, n);
    return o->write ? o->write(o->ctx, p, n) : 0;
}

/* the rest (bytes between tensors), decoded chunk by chunk as it is needed */
typedef struct rest_reader {
    const sm_smelt *s;
    const smelt_file *f;
    void *dctx;
    uint8_t *buf, *scratch;
    size_t chunk, pos, len; /* next chunk to decode; position and length in buf */
    XXH3_state_t *h;
} rest_reader;

static int rest_emit(rest_reader *r, out_stream *o, uint64_t n) {
    const smelt_tensor *t = &r->f->rest;
    while (n) {
        if (r->pos == r->len) {
            if (r->chunk >= t->n_chunks)
                return sm_error("%s: file '%s': the rest ends before the file does", r->s->path, r->f->name);
            if (smelt_decode_chunk(r->s, r->f, t, r->chunk, r->dctx, r->buf, r->scratch)) return -1;
            r->len = (size_t)smelt_chunk_raw(t, r->chunk++), r->pos = 0;
            XXH3_64bits_update(r->h, r->buf, r->len);
        }
        const size_t k = (size_t)(r->len - r->pos < n ? r->len - r->pos : n);
        if (emit(o, r->buf + r->pos, k)) return -1;
        r->pos += k, n -= k;
    }
    return 0;
}

typedef struct djob {
    const smelt_tensor *t;
    size_t c;
    uint8_t *buf;
    char *err;
} djob;

static int extract_packed(const sm_smelt *s, const smelt_file *f, out_stream *o, int threads) {
    const size_t cap = (size_t)threads * BATCH_PER_THREAD;
    djob *jobs = calloc(cap, sizeof *jobs);
    ZSTD_DCtx **dctx = calloc((size_t)threads + 1, sizeof *dctx);
    uint8_t **scratch = calloc((size_t)threads, sizeof *scratch), **bufs = calloc(cap, sizeof *bufs);
    rest_reader r = {.s = s, .f = f, .h = XXH3_createState()};
    XXH3_state_t *th = XXH3_createState();
    uint64_t maxc = f->rest.chunk_size;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].chunk_size > maxc) maxc = f->tensors[i].chunk_size;
    int rc = !jobs || !dctx || !scratch || !bufs || !r.h || !th ? sm_error("out of memory") : 0;
    for (size_t i = 0; i < cap && !rc; i++)
        if (!(bufs[i] = malloc(maxc ? maxc : 1))) rc = sm_error("out of memory");
    for (int i = 0; i <= threads && !rc; i++)
        if (!(dctx[i] = ZSTD_createDCtx()) || (i < threads && !(scratch[i] = malloc(maxc ? maxc : 1)))) rc = sm_error("out of memory");
    if (!rc) {
        r.dctx = dctx[threads];
        r.buf = malloc(f->rest.chunk_size ? f->rest.chunk_size : 1);
        r.scratch = malloc(f->rest.chunk_size ? f->rest.chunk_size : 1);
        if (!r.buf || !r.scratch) rc = sm_error("out of memory");
        XXH3_64bits_reset(r.h);
    }
    uint64_t pos = 0; /* in the original file */
    size_t ti = 0, tc = 0;
    while (!rc && ti < f->n_tensors) {
        /* the next batch of tensor chunks, in file order */
        size_t n = 0;
        for (size_t a = ti, b = tc; n < cap && a < f->n_tensors;) {
            if (b >= f->tensors[a].n_chunks) { a++, b = 0; continue; }
            jobs[n++] = (djob){&f->tensors[a], b++, NULL, NULL};
        }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (n > 1)
        for (long j = 0; j < (long)n; j++) {
            djob *d = &jobs[j];
            const int me = omp_get_thread_num();
            d->buf = bufs[j];
            if (smelt_decode_chunk(s, f, d->t, d->c, dctx[me], d->buf, scratch[me])) d->err = strdup(sm_last_error());
        }
        /* in order: the gap before a tensor, its chunks, its checksum */
        size_t j = 0;
        while (!rc && ti < f->n_tensors) {
            const smelt_tensor *t = &f->tensors[ti];
            if (tc == 0) {
                rc = rest_emit(&r, o, t->src_off - pos);
                pos = t->src_off;
                XXH3_64bits_reset(th);
            }
            if (!rc && tc < t->n_chunks) {
                if (j == n) break;
                djob *d = &jobs[j++];
                if (d->err) {
                    rc = sm_error("%s", d->err);
                    break;
                }
                const size_t len = (size_t)smelt_chunk_raw(t, tc);
                XXH3_64bits_update(th, d->buf, len);
                rc = emit(o, d->buf, len);
                pos += len;
                tc++;
            }
            if (!rc && tc == t->n_chunks) {
                const uint64_t h = XXH3_64bits_digest(th);
                if (h != t->xxh) rc = smelt_hash_error(s, f, t, h);
                ti++, tc = 0;
            }
        }
        for (size_t k = 0; k < n; k++) free(jobs[k].err);
    }
    if (!rc) rc = rest_emit(&r, o, f->size - pos);
    if (!rc && (r.chunk != f->rest.n_chunks || r.pos != r.len))
        rc = sm_error("%s: file '%s': the rest holds more bytes than the file's gaps", s->path, f->name);
    if (!rc) {
        const uint64_t h = XXH3_64bits_digest(r.h);
        if (h != f->rest.xxh) rc = smelt_hash_error(s, f, &f->rest, h);
    }
    for (int i = 0; dctx && i <= threads; i++) ZSTD_freeDCtx(dctx[i]);
    for (int i = 0; scratch && i < threads; i++) free(scratch[i]);
    for (size_t i = 0; bufs && i < cap; i++) free(bufs[i]);
    free(bufs);
    free(dctx);
    free(scratch);
    free(jobs);
    free(r.buf);
    free(r.scratch);
    XXH3_freeState(r.h);
    XXH3_freeState(th);
    return rc;
}

static int extract_raw(const sm_smelt *s, const smelt_file *f, out_stream *o) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const smelt_tensor *t = &f->tensors[i];
        const uint64_t h = XXH3_64bits(s->base + t->off, (size_t)t->view.nbytes);
        if (h != t->xxh) return smelt_hash_error(s, f, t, h);
    }
    for (uint64_t p = 0; p < f->size; p += RAW_PIECE) {
        const uint64_t n = f->size - p < RAW_PIECE ? f->size - p : RAW_PIECE;
        if (emit(o, s->base + f->off + p, (size_t)n)) return -1;
        sm_mmap_release(&s->map, s->base + f->off + p, n);
    }
    return 0;
}

int sm_smelt_extract(const sm_smelt *s, size_t i, sm_smelt_write_fn write, void *ctx) {
    const smelt_file *f = &s->files[i];
    out_stream o = {write, ctx, XXH3_createState()};
    if (!o.file_h) return sm_error("out of memory");
    XXH3_64bits_reset(o.file_h);
    int rc = f->raw ? extract_raw(s, f, &o) : extract_packed(s, f, &o, sm_num_threads());
    if (!rc) {
        const uint64_t h = XXH3_64bits_digest(o.file_h);
        if (h != f->xxh)
            rc = sm_error("%s: file '%s' (%llu bytes): checksum mismatch: xxh3-64 %016llx, the directory says %016llx "
                          "(the file is damaged)", s->path, f->name, (unsigned long long)f->size,
                          (unsigned long long)h, (unsigned long long)f->xxh);
    }
    XXH3_freeState(o.file_h);
    return rc;
}

int sm_smelt_verify_file(const char *path, uint64_t *n_tensors_checked, uint64_t *bytes_checked) {
    if (n_tensors_checked) *n_tensors_checked = 0;
    if (bytes_checked) *bytes_checked = 0;
    sm_smelt *s;
    if (sm_smelt_open(path, &s)) return -1;
    int rc = 0;
    for (size_t i = 0; i < s->n_files && !rc; i++) {
        rc = sm_smelt_extract(s, i, NULL, NULL);
        if (!rc && n_tensors_checked) *n_tensors_checked += s->files[i].n_tensors;
        if (!rc && bytes_checked) *bytes_checked += s->files[i].size;
    }
    sm_smelt_close(s);
    return rc;
}

/* ---- unpack ---- */

static int write_outfile(void *ctx, const void *p, size_t n) { return sm_outfile_write(ctx, p, n); }

static int extract_to(const sm_smelt *s, size_t i, const char *path) {
    sm_outfile *o = sm_outfile_open(path);
    if (!o) return -1;
    if (sm_smelt_extract(s, i, write_outfile, o)) {
        sm_outfile_abort(o);
        return -1;
    }
    return sm_outfile_commit(o);
}

int sm_smelt_unpack(const char *path, const char *out) {
    sm_smelt *s;
    if (sm_smelt_open(path, &s)) return -1;
    int rc = 0;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(s->header, "source");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(src, "kind");
    const bool dir = s->n_files > 1 || (cJSON_IsString(kind) && !strcmp(kind->valuestring, "directory"));
    if (!dir) {
        rc = extract_to(s, 0, out);
    } else {
        sm_outdir *d = sm_outdir_open(out);
        rc = d ? 0 : -1;
        for (size_t i = 0; i < s->n_files && !rc; i++) {
            char *p = sm_outdir_file(d, s->files[i].name);
            rc = p ? extract_to(s, i, p) : -1;
            free(p);
        }
        if (d) rc = rc ? (sm_outdir_abort(d), -1) : sm_outdir_commit(d);
    }
    sm_smelt_close(s);
    return rc;
}

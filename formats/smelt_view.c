/* smelt_view.c - the readers' view of a .smelt: the one file it holds, mapped as that file.
 * Raw storage is a zero-copy mapping of the .smelt (after its checksums are checked); compressed
 * storage is a lazy mapping (core/lazymap.h): the bytes between the tensors (a GGUF's header and
 * metadata, a safetensors header) are decoded at open, each tensor when it is first read, its
 * checksum checked before any of its bytes become readable. No temporary file, no full decode. */
#include "core/lazymap.h"
#include "formats/smelt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

typedef struct view {
    sm_smelt *s;
    const smelt_file *f;
    size_t *tensor;  /* unit -> tensor index */
    void *dctx;      /* ZSTD_DCtx */
    uint8_t *buf, *scratch;
    XXH3_state_t *h;
} view;

static void view_free(void *ctx) {
    view *v = ctx;
    if (!v) return;
    ZSTD_freeDCtx(v->dctx);
    free(v->tensor);
    free(v->buf);
    free(v->scratch);
    XXH3_freeState(v->h);
    sm_smelt_close(v->s);
    free(v);
}

/* the stored bytes [p, p+n) of the .smelt are read: their pages may go */
static void done_with(const view *v, const void *p, uint64_t n) { sm_mmap_release(&v->s->map, p, n); }

/* tensor t (its chunks one by one, hashed on the way) through put, at its place in the file */
static int fill(void *ctx, size_t unit, sm_lazy_put_fn put, void *put_ctx) {
    view *v = ctx;
    const smelt_file *f = v->f;
    const smelt_tensor *t = &f->tensors[v->tensor[unit]];
    uint64_t h;
    if (t->raw) {
        const uint8_t *src = v->s->base + t->off;
        h = XXH3_64bits(src, (size_t)t->view.nbytes);
        if (h == t->xxh && put(put_ctx, t->src_off, src, (size_t)t->view.nbytes)) return -1;
        done_with(v, src, t->view.nbytes);
    } else {
        XXH3_64bits_reset(v->h);
        for (size_t c = 0; c < t->n_chunks; c++) {
            const size_t len = (size_t)smelt_chunk_raw(t, c);
            if (smelt_decode_chunk(v->s, f, t, c, v->dctx, v->buf, v->scratch)) return -1;
            done_with(v, v->s->base + t->chunks[c].off, t->chunks[c].size);
            XXH3_64bits_update(v->h, v->buf, len);
            if (put(put_ctx, t->src_off + (uint64_t)c * t->chunk_size, v->buf, len)) return -1;
        }
        h = XXH3_64bits_digest(v->h);
    }
    return h == t->xxh ? 0 : smelt_hash_error(v->s, f, t, h);
}

/* the bytes between the tensors: the rest's chunks (or a raw file's own bytes) into the gaps */
static int put_rest(view *v, sm_mmap *m) {
    const smelt_file *f = v->f;
    const smelt_tensor *r = &f->rest;
    size_t c = 0, have = 0, used = 0; /* chunk to decode next; bytes decoded in buf, used of them */
    uint64_t pos = 0;
    XXH3_64bits_reset(v->h);
    for (size_t i = 0; i <= f->n_tensors; i++) {
        const uint64_t end = i < f->n_tensors ? f->tensors[i].src_off : f->size;
        while (pos < end) {
            if (f->raw) {
                if (sm_lazymap_put(m, pos, v->s->base + f->off + pos, (size_t)(end - pos))) return -1;
                pos = end;
                break;
            }
            if (used == have) {
                if (c >= r->n_chunks) return sm_error("%s: file '%s': the rest ends before the file does", v->s->path, f->name);
                if (smelt_decode_chunk(v->s, f, r, c, v->dctx, v->buf, v->scratch)) return -1;
                have = (size_t)smelt_chunk_raw(r, c++), used = 0;
                XXH3_64bits_update(v->h, v->buf, have);
            }
            const size_t k = (size_t)(have - used < end - pos ? have - used : end - pos);
            if (sm_lazymap_put(m, pos, v->buf + used, k)) return -1;
            used += k, pos += k;
        }
        if (i < f->n_tensors) pos = f->tensors[i].src_off + f->tensors[i].view.nbytes;
    }
    if (f->raw) return 0;
    if (c != r->n_chunks || used != have)
        return sm_error("%s: file '%s': the rest holds more bytes than the file's gaps", v->s->path, f->name);
    const uint64_t h = XXH3_64bits_digest(v->h);
    return h == r->xxh ? 0 : smelt_hash_error(v->s, f, r, h);
}

int sm_smelt_map_lazy(sm_smelt *s, size_t file, sm_mmap *m) {
    memset(m, 0, sizeof *m);
    if (file >= s->n_files) return sm_error("%s: no file %zu", s->path, file);
    const smelt_file *f = &s->files[file];
    view *v = calloc(1, sizeof *v);
    sm_lazy_unit *units = calloc(f->n_tensors + 1, sizeof *units);
    if (!v || !units) {
        free(v);
        free(units);
        return sm_error("out of memory");
    }
    s->refs++;
    v->s = s, v->f = f;
    uint64_t maxc = f->rest.chunk_size;
    size_t n = 0;
    v->tensor = calloc(f->n_tensors + 1, sizeof *v->tensor);
    for (size_t i = 0; v->tensor && i < f->n_tensors; i++) {
        const smelt_tensor *t = &f->tensors[i];
        if (t->chunk_size > maxc) maxc = t->chunk_size;
        if (!t->view.nbytes) continue;
        v->tensor[n] = i;
        units[n++] = (sm_lazy_unit){t->src_off, t->view.nbytes};
    }
    v->dctx = ZSTD_createDCtx();
    v->h = XXH3_createState();
    v->buf = malloc(maxc ? maxc : 1);
    v->scratch = malloc(maxc ? maxc : 1);
    if (!v->tensor || !v->dctx || !v->h || !v->buf || !v->scratch) {
        free(units);
        view_free(v);
        return sm_error("out of memory");
    }
    const sm_lazy_spec spec = {s->path, f->size, units, n, fill, v, view_free, 0};
    int rc = sm_lazymap_open(m, &spec); /* frees v on failure */
    free(units);
    if (!rc && (put_rest(v, m) || sm_lazymap_ready(m))) {
        sm_mmap_close(m);
        rc = -1;
    }
    return rc;
}

static int map_fd(sm_mmap *m, int fd, uint64_t off, uint64_t size, const char *path) {
    m->size = (size_t)size;
    if (size) {
        m->data = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, (off_t)off);
        if (m->data == MAP_FAILED) {
            m->data = NULL;
            return sm_error("%s: cannot mmap: %s", path, strerror(errno));
        }
    }
    if (!(m->path = strdup(path))) {
        sm_mmap_close(m);
        return sm_error("out of memory");
    }
    return 0;
}

int sm_smelt_mmap_open(sm_mmap *m, const char *path) {
    if (!sm_smelt_is_file(path)) return sm_mmap_open(m, path);
    memset(m, 0, sizeof *m);
    sm_smelt *s;
    if (sm_smelt_open(path, &s)) return -1;
    int rc = 0;
    const smelt_file *f = &s->files[0];
    if (s->n_files != 1) {
        rc = sm_error("%s: this .smelt holds %zu files (a packed directory); unpack it first (smelt unpack %s -o DIR)",
                      path, s->n_files, path);
    } else if (f->raw && f->off % (uint64_t)sysconf(_SC_PAGESIZE) == 0) {
        /* zero-copy: the file's bytes are a page-aligned range of the .smelt, checked first */
        int fd = -1;
        rc = sm_smelt_extract(s, 0, NULL, NULL);
        if (!rc && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) rc = sm_error("%s: cannot open: %s", path, strerror(errno));
        if (!rc) rc = map_fd(m, fd, f->off, f->size, path);
        if (fd >= 0) close(fd);
    } else { /* compressed (or raw off a page boundary): decoded as it is read */
        rc = sm_smelt_map_lazy(s, 0, m);
    }
    sm_smelt_close(s);
    return rc;
}

const char *sm_smelt_inner_kind(const char *path) {
    if (!sm_smelt_is_file(path)) return NULL;
    sm_smelt *s;
    if (sm_smelt_open(path, &s)) {
        sm_clear_error();
        return NULL;
    }
    const char *k = s->n_files != 1 ? NULL : !strcmp(s->files[0].kind, "gguf") ? "gguf"
                    : !strcmp(s->files[0].kind, "safetensors")                 ? "safetensors" : "other";
    sm_smelt_close(s);
    return k;
}

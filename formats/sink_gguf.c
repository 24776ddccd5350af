/* sink_gguf.c - the GGUF sink: one file (sm_gguf_writer), or a split set laid out as
 * llama.cpp's llama-gguf-split writes it (tools/gguf-split/gguf-split.cpp, split_strategy):
 *   - tensors go to parts in declaration order; a new part starts before tensor i when
 *     --split-max-tensors N: i > 0 and i % N == 0;
 *     --split-max-size B:    the part's tensor bytes (each tensor's size padded to 32, the
 *                            default alignment, whatever general.alignment says) would exceed B
 *                            with tensor i (never before the first tensor of a part: a tensor
 *                            larger than B gets a part of its own; llama-gguf-split refuses
 *                            only when that is the very first tensor);
 *   - part 0 carries all metadata, then split.no (u16), split.count (u16) and
 *     split.tensors.count (i32, all parts' tensors); the other parts carry only those three;
 *   - part i is PREFIX-%05d-of-%05d.gguf (i + 1, n), PREFIX the output path without ".gguf".
 * The parts are written one after another as temporaries and renamed only at finish, all of
 * them; if a rename fails, the parts renamed before it are removed again. */
#include "formats/sink.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct gguf_part {
    char *path;
    size_t first, end;   /* tensors [first, end) */
    sm_meta *meta;       /* split only: this part's metadata */
    sm_outfile *done;    /* written, not yet committed */
} gguf_part;

typedef struct gguf_sink {
    size_t n_parts;
    gguf_part *parts;
    size_t cur_part;
    sm_gguf_writer *w;   /* the part being written */
} gguf_sink;

static void free_state(gguf_sink *g) {
    if (!g) return;
    sm_gguf_writer_abort(g->w);
    for (size_t i = 0; i < g->n_parts; i++) {
        sm_outfile_abort(g->parts[i].done);
        sm_meta_free(g->parts[i].meta);
        free(g->parts[i].path);
    }
    free(g->parts);
    free(g);
}

/* Parts as llama-gguf-split cuts them. */
static int plan_parts(sm_sink *s, gguf_sink *g) {
    bool split = s->opts.split_max_bytes || s->opts.split_max_tensors;
    g->parts = calloc(s->n_tensors ? s->n_tensors : 1, sizeof *g->parts);
    if (!g->parts) return sm_error("out of memory");
    g->n_parts = 1;
    uint64_t cur = 0;
    for (size_t i = 0; i < s->n_tensors; i++) {
        uint64_t nb = (s->tensors[i].nbytes + 31) / 32 * 32;
        bool cut = (s->opts.split_max_tensors && i > 0 && i % s->opts.split_max_tensors == 0) ||
                   (s->opts.split_max_bytes && i > g->parts[g->n_parts - 1].first && cur + nb > s->opts.split_max_bytes);
        if (cut) {
            g->parts[g->n_parts - 1].end = i;
            g->parts[g->n_parts++].first = i;
            cur = 0;
        }
        cur += nb;
    }
    g->parts[g->n_parts - 1].end = s->n_tensors;
    if (!split) {
        g->parts[0].path = strdup(s->path);
        return g->parts[0].path ? 0 : sm_error("out of memory");
    }
    if (g->n_parts > 65535) return sm_error("%s: %zu split parts; GGUF's split.count holds at most 65535", s->path, g->n_parts);
    if (s->n_tensors > INT32_MAX) return sm_error("%s: too many tensors for split.tensors.count", s->path);
    char *prefix = sm_split_prefix_of(s->path);
    if (!prefix) return -1;
    for (size_t p = 0; p < g->n_parts; p++) {
        gguf_part *pt = &g->parts[p];
        pt->path = sm_split_path(prefix, (int)p, (int)g->n_parts);
        pt->meta = sm_meta_new();
        if (!pt->path || !pt->meta) {
            free(prefix);
            return sm_error("out of memory");
        }
        if (p == 0) sm_meta_set_all(pt->meta, s->meta);
        sm_meta_set_u16(pt->meta, "split.no", (uint16_t)p);
        sm_meta_set_u16(pt->meta, "split.count", (uint16_t)g->n_parts);
        sm_meta_set_i32(pt->meta, "split.tensors.count", (int32_t)s->n_tensors);
    }
    free(prefix);
    return 0;
}

/* Open part p's writer: its tensors declared, its header written. */
static int begin_part(sm_sink *s, gguf_sink *g, size_t p) {
    gguf_part *pt = &g->parts[p];
    g->cur_part = p;
    g->w = sm_gguf_writer_new_meta(pt->meta ? pt->meta : s->meta);
    if (!g->w) return -1;
    for (size_t i = pt->first; i < pt->end; i++) {
        const sm_sink_tensor *t = &s->tensors[i];
        if (sm_gguf_add_tensor(g->w, t->name, t->type, t->n_dims, t->shape)) return -1;
    }
    return sm_gguf_writer_begin(g->w, pt->path);
}

static int end_part(gguf_sink *g) {
    sm_gguf_writer *w = g->w;
    g->w = NULL;
    return sm_gguf_writer_end(w, &g->parts[g->cur_part].done);
}

static int gguf_begin(sm_sink *s) {
    gguf_sink *g = calloc(1, sizeof *g);
    if (!g) return sm_error("out of memory");
    s->impl = g;
    if (plan_parts(s, g)) return -1;
    return begin_part(s, g, 0);
}

static int gguf_write(sm_sink *s, size_t i, uint64_t offset, const void *data, uint64_t n) {
    gguf_sink *g = s->impl;
    if (offset == 0 && i >= g->parts[g->cur_part].end) { /* the first tensor of the next part */
        if (end_part(g) || begin_part(s, g, g->cur_part + 1)) return -1;
    }
    return sm_gguf_writer_write(g->w, data, n);
}

static int gguf_finish(sm_sink *s) {
    gguf_sink *g = s->impl;
    if (end_part(g)) return -1;
    while (g->cur_part + 1 < g->n_parts) /* parts without tensors cannot occur; be safe */
        if (begin_part(s, g, g->cur_part + 1) || end_part(g)) return -1;
    for (size_t p = 0; p < g->n_parts; p++) {
        sm_outfile *o = g->parts[p].done;
        g->parts[p].done = NULL;
        if (sm_outfile_commit(o) || sm_sink_add_file(s, g->parts[p].path)) {
            for (size_t q = 0; q < p; q++) unlink(g->parts[q].path); /* no partial set */
            if (p < g->n_parts && sm_sink_n_files(s) > p) unlink(g->parts[p].path);
            return -1;
        }
    }
    free_state(g);
    s->impl = NULL;
    return 0;
}

static void gguf_abort(sm_sink *s) {
    free_state(s->impl);
    s->impl = NULL;
}

const sm_sink_impl sm_sink_impl_gguf = {"gguf", gguf_begin, gguf_write, gguf_finish, gguf_abort};

/* smelt_packer.c - the .smelt writer's machinery, shared by `smelt pack` (smelt_write.c) and the
 * streaming writer (smelt_stream.c): the preamble; batches of chunks encoded in parallel (one zstd
 * context per thread) and written in order, so the bytes do not depend on the thread count and
 * memory does not depend on the model's size; the header JSON and the trailer; the commit. */
#include "formats/smelt_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define BATCH_PER_THREAD 4

int smelt_packer_init(smelt_packer *p, const char *out, int level, int threads, uint64_t chunk) {
    memset(p, 0, sizeof *p);
    p->out_path = out;
    p->level = level ? level : SM_SMELT_DEFAULT_LEVEL;
    p->threads = threads > 0 ? threads : sm_num_threads();
    p->chunk = chunk ? chunk : SMELT_DEFAULT_CHUNK;
    if (p->chunk % 4 || p->chunk > SMELT_MAX_CHUNK)
        return sm_error("chunk size %llu: expected a multiple of 4 up to %llu", (unsigned long long)p->chunk,
                        (unsigned long long)SMELT_MAX_CHUNK);
    p->cap_jobs = (size_t)p->threads * BATCH_PER_THREAD;
    if (!(p->jobs = calloc(p->cap_jobs, sizeof *p->jobs)) || !(p->cctx = calloc((size_t)p->threads, sizeof *p->cctx)) ||
        !(p->tensor_h = XXH3_createState()) || !(p->file_h = XXH3_createState()) ||
        !(p->outs = calloc(p->cap_jobs, sizeof *p->outs)) || !(p->scratch = calloc((size_t)p->threads, sizeof *p->scratch)))
        return sm_error("out of memory");
    for (size_t i = 0; i < p->cap_jobs; i++)
        if (!(p->outs[i] = malloc(smelt_chunk_bound(SMELT_PLANES_B4, (size_t)p->chunk)))) return sm_error("out of memory");
    for (int i = 0; i < p->threads; i++)
        if (!(p->cctx[i] = ZSTD_createCCtx()) || !(p->scratch[i] = malloc((size_t)p->chunk))) return sm_error("out of memory");
    if (!(p->o = sm_outfile_open(out))) return -1;
    uint8_t pre[SMELT_PREAMBLE] = {0};
    memcpy(pre, SM_SMELT_MAGIC, 8);
    pre[8] = SMELT_VERSION_MAJOR, pre[10] = SMELT_VERSION_MINOR;
    return sm_outfile_write(p->o, pre, sizeof pre);
}

void smelt_packer_free(smelt_packer *p) {
    sm_outfile_abort(p->o);
    p->o = NULL;
    for (size_t i = 0; i < p->n_jobs; i++) free(p->jobs[i].owned);
    for (int i = 0; p->cctx && i < p->threads; i++) ZSTD_freeCCtx(p->cctx[i]);
    for (int i = 0; p->scratch && i < p->threads; i++) free(p->scratch[i]);
    for (size_t i = 0; p->outs && i < p->cap_jobs; i++) free(p->outs[i]);
    XXH3_freeState(p->tensor_h);
    XXH3_freeState(p->file_h);
    free(p->cctx);
    free(p->outs);
    free(p->scratch);
    free(p->jobs);
    memset(p, 0, sizeof *p);
}

/* the mapped file's bytes [p->file_pos, end) into the file checksum */
void smelt_packer_hash_to(smelt_packer *p, uint64_t end) {
    if (end > p->file_pos) XXH3_64bits_update(p->file_h, (const uint8_t *)p->map->data + p->file_pos, (size_t)(end - p->file_pos));
    if (end > p->file_pos) p->file_pos = end;
}

/* Used source pages are handed back (sm_mmap_release) RELEASE_EVERY bytes at a time: one
 * madvise per chunk cost a quarter of pack's CPU time (each one flushes the TLB of every CPU
 * the process ran on), measured with perf on a BF16 GGUF at one thread. */
#define RELEASE_EVERY ((uint64_t)32 << 20)

void smelt_packer_release(smelt_packer *p) {
    if (p->rel_hi > p->rel_lo) sm_mmap_release(p->map, (const uint8_t *)p->map->data + p->rel_lo, p->rel_hi - p->rel_lo);
    p->rel_lo = p->rel_hi = 0;
}

static void release_later(smelt_packer *p, const uint8_t *src, size_t n) {
    const uint64_t lo = (uint64_t)(src - (const uint8_t *)p->map->data), hi = lo + n;
    if (p->rel_hi == p->rel_lo) p->rel_lo = lo, p->rel_hi = hi;
    if (lo < p->rel_lo) p->rel_lo = lo;
    if (hi > p->rel_hi) p->rel_hi = hi;
    if (p->rel_hi - p->rel_lo >= RELEASE_EVERY) smelt_packer_release(p);
}

int smelt_packer_flush(smelt_packer *p) {
    const long n = (long)p->n_jobs;
#pragma omp parallel for num_threads(p->threads) schedule(dynamic, 1) if (n > 1)
    for (long i = 0; i < n; i++) {
        smelt_job *j = &p->jobs[i];
        const int me = omp_get_thread_num();
        j->out = p->outs[i];
        if (smelt_chunk_encode(p->cctx[me], p->level, j->planes, j->src, j->n, p->scratch[me], j->out, &j->out_n))
            j->err = strdup(sm_last_error());
    }
    int rc = 0;
    for (size_t i = 0; i < p->n_jobs; i++) {
        smelt_job *j = &p->jobs[i];
        if (!rc && j->err) rc = sm_error("%s: compressing: %s", p->out_path, j->err);
        if (!rc && j->t && p->map) { /* checksums of a mapped source (a stream hashes as it is fed) */
            const uint64_t at = (uint64_t)(j->src - (const uint8_t *)p->map->data);
            if (at == j->t->src_off) XXH3_64bits_reset(p->tensor_h);
            XXH3_64bits_update(p->tensor_h, j->src, j->n);
            if (at + j->n == j->t->src_off + j->t->view.nbytes) j->t->xxh = XXH3_64bits_digest(p->tensor_h);
            smelt_packer_hash_to(p, at + j->n);
        }
        if (!rc) {
            j->dst->off = sm_outfile_tell(p->o);
            j->dst->size = j->out_n;
            rc = sm_outfile_write(p->o, j->out, j->out_n);
        }
        if (!j->owned && p->map) release_later(p, j->src, j->n);
        p->done += j->n;
        free(j->owned);
        free(j->err);
    }
    p->n_jobs = 0;
    sm_progress_update(&p->prog, p->done);
    return rc;
}

int smelt_packer_add(smelt_packer *p, smelt_tensor *t, const uint8_t *src, uint8_t *owned, size_t n,
                     smelt_planes planes, smelt_chunk *dst) {
    p->jobs[p->n_jobs++] = (smelt_job){t, src, owned, n, planes, dst, NULL, 0, NULL};
    return p->n_jobs == p->cap_jobs ? smelt_packer_flush(p) : 0;
}

int smelt_file_add_tensor(smelt_file *f, const char *name, sm_type type, int n_dims, const int64_t *shape, uint64_t off,
                          uint64_t nbytes) {
    if (!(f->n_tensors & (f->n_tensors + 1))) { /* grow at 0, 1, 3, 7, ... */
        smelt_tensor *t = realloc(f->tensors, (2 * f->n_tensors + 2) * sizeof *t);
        if (!t) return sm_error("out of memory");
        f->tensors = t;
    }
    smelt_tensor *t = &f->tensors[f->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->view.name = strdup(name))) return sm_error("out of memory");
    f->n_tensors++;
    t->view.type = type;
    t->view.n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->view.shape[d] = shape[d];
    t->view.nbytes = nbytes;
    t->src_off = off;
    return 0;
}

int smelt_alloc_chunks(smelt_tensor *t, uint64_t chunk) {
    t->chunk_size = chunk;
    t->n_chunks = (size_t)((t->view.nbytes + chunk - 1) / chunk);
    if (t->n_chunks && !(t->chunks = calloc(t->n_chunks, sizeof *t->chunks))) return sm_error("out of memory");
    return 0;
}

/* ---- the header ---- */

cJSON *smelt_value_json(const sm_gguf_value *v) {
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64: case SM_GGUF_BOOL:
        return v->type == SM_GGUF_BOOL ? cJSON_CreateBool(v->v.u != 0) : cJSON_CreateNumber((double)v->v.u);
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64: return cJSON_CreateNumber((double)v->v.i);
    case SM_GGUF_FLOAT32: case SM_GGUF_FLOAT64: return cJSON_CreateNumber(v->v.f);
    case SM_GGUF_STRING: return cJSON_CreateString(v->v.str.ptr);
    case SM_GGUF_ARRAY: { /* summarized: element type and count */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "array_of", sm_gguf_vtype_name(v->v.arr.type));
        cJSON_AddNumberToObject(o, "n", (double)v->v.arr.n);
        return o;
    }
    }
    return cJSON_CreateNull();
}

static cJSON *chunks_json(const smelt_tensor *t) {
    cJSON *a = cJSON_CreateArray();
    for (size_t c = 0; c < t->n_chunks; c++) {
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)t->chunks[c].off));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)t->chunks[c].size));
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static void add_hex(cJSON *o, const char *key, uint64_t v) {
    char h[17];
    smelt_hex64(v, h);
    cJSON_AddStringToObject(o, key, h);
}

static void add_packed(cJSON *o, const smelt_tensor *t) {
    cJSON_AddStringToObject(o, "codec", "zstd");
    cJSON_AddStringToObject(o, "planes", smelt_planes_name(t->planes));
    cJSON_AddNumberToObject(o, "chunk_size", (double)t->chunk_size);
    cJSON_AddItemToObject(o, "chunks", chunks_json(t));
}

cJSON *smelt_file_json(const smelt_file *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", f->name);
    cJSON_AddStringToObject(o, "kind", f->kind);
    cJSON_AddNumberToObject(o, "size", (double)f->size);
    add_hex(o, "xxh3_64", f->xxh);
    cJSON_AddStringToObject(o, "storage", f->raw ? "raw" : "packed");
    if (f->raw) cJSON_AddNumberToObject(o, "offset", (double)f->off);
    else {
        cJSON *r = cJSON_AddObjectToObject(o, "rest");
        cJSON_AddNumberToObject(r, "size", (double)f->rest.view.nbytes);
        add_hex(r, "xxh3_64", f->rest.xxh);
        add_packed(r, &f->rest);
    }
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (size_t i = 0; i < f->n_tensors; i++) {
        const smelt_tensor *t = &f->tensors[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", t->view.name);
        cJSON_AddStringToObject(e, "type", sm_type_name(t->view.type));
        cJSON_AddNumberToObject(e, "type_id", (double)t->view.type);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->view.n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->view.shape[d]));
        cJSON_AddNumberToObject(e, "src_offset", (double)t->src_off);
        cJSON_AddNumberToObject(e, "size", (double)t->view.nbytes);
        add_hex(e, "xxh3_64", t->xxh);
        if (t->raw) {
            cJSON_AddStringToObject(e, "codec", "raw");
            cJSON_AddNumberToObject(e, "offset", (double)t->off);
        } else {
            add_packed(e, t);
        }
        cJSON_AddItemToArray(ts, e);
    }
    return o;
}

/* model metadata of a directory: config.json, generation_config.json, the chat template */

cJSON *smelt_header_new(const char *source_name, const char *source_kind, const char *command_line, cJSON *model,
                        const cJSON *provenance) {
    cJSON *h = cJSON_CreateObject();
    if (!h) {
        cJSON_Delete(model);
        return NULL;
    }
    cJSON_AddStringToObject(h, "format", "smelt");
    cJSON *v = cJSON_AddArrayToObject(h, "version");
    cJSON_AddItemToArray(v, cJSON_CreateNumber(SMELT_VERSION_MAJOR));
    cJSON_AddItemToArray(v, cJSON_CreateNumber(SMELT_VERSION_MINOR));
    cJSON *tool = cJSON_AddObjectToObject(h, "tool");
    cJSON_AddStringToObject(tool, "name", "smelt");
    cJSON_AddStringToObject(tool, "version", SM_VERSION);
    if (command_line) cJSON_AddStringToObject(tool, "command_line", command_line);
    cJSON *source = cJSON_AddObjectToObject(h, "source");
    cJSON_AddStringToObject(source, "name", source_name);
    cJSON_AddStringToObject(source, "kind", source_kind);
    cJSON_AddItemToObject(h, "model", model);
    if (provenance) cJSON_AddItemToObject(h, "provenance", cJSON_Duplicate(provenance, true));
    cJSON_AddArrayToObject(h, "files");
    return h;
}

int smelt_packer_commit(smelt_packer *p, cJSON *h) {
    char *text = cJSON_PrintUnformatted(h);
    if (!text) return sm_error("out of memory");
    const uint64_t off = sm_outfile_tell(p->o), len = strlen(text);
    uint8_t tr[SMELT_TRAILER];
    const uint64_t v[4] = {off, len, XXH3_64bits(text, (size_t)len), off + len + SMELT_TRAILER};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 8; b++) tr[8 * i + b] = (uint8_t)(v[i] >> (8 * b));
    memcpy(tr + 32, SMELT_END_MAGIC, 8);
    int rc = sm_outfile_write(p->o, text, (size_t)len);
    free(text);
    if (!rc) rc = sm_outfile_write(p->o, tr, sizeof tr);
    if (rc) return rc;
    sm_outfile *o = p->o;
    p->o = NULL;
    return sm_outfile_commit(o);
}

/* smelt_write.c - `smelt pack`: a GGUF, a safetensors file or a model directory into a .smelt.
 *
 * Streaming: the sources are mmapped and their tensors cut into chunks of at most chunk_size
 * raw bytes; a bounded batch of chunks is encoded in parallel (one zstd context per thread),
 * then written in order, so the bytes do not depend on the thread count and memory does not
 * depend on the model's size (used source pages are released after each batch). */
#include "formats/checkpoint_internal.h"
#include "formats/safetensors_internal.h"
#include "formats/smelt_internal.h"

#include <dirent.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#define BATCH_PER_THREAD 4
#define RAW_PIECE ((uint64_t)64 << 20)

typedef struct src_file {
    smelt_file f;
    char *path;
    sm_mmap map;
} src_file;

static int add_tensor(smelt_file *f, const char *name, sm_type type, int n_dims, const int64_t *shape, uint64_t off,
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

/* a GGUF metadata value as JSON (long arrays summarized as {type, n}) */
static cJSON *value_json(const sm_gguf_value *v) {
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64: case SM_GGUF_BOOL:
        return v->type == SM_GGUF_BOOL ? cJSON_CreateBool(v->v.u != 0) : cJSON_CreateNumber((double)v->v.u);
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64: return cJSON_CreateNumber((double)v->v.i);
    case SM_GGUF_FLOAT32: case SM_GGUF_FLOAT64: return cJSON_CreateNumber(v->v.f);
    case SM_GGUF_STRING: return cJSON_CreateString(v->v.str.ptr);
    case SM_GGUF_ARRAY: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "array_of", sm_gguf_vtype_name(v->v.arr.type));
        cJSON_AddNumberToObject(o, "n", (double)v->v.arr.n);
        return o;
    }
    }
    return cJSON_CreateNull();
}

static int collect_gguf(src_file *s, cJSON *model) {
    sm_gguf *g;
    if (sm_gguf_open(s->path, &g)) return -1;
    int rc = 0;
    for (size_t i = 0; i < sm_gguf_n_tensors(g) && !rc; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        rc = add_tensor(&s->f, t->name, t->type, t->n_dims, t->shape, sm_gguf_tensor_file_offset(g, t), t->nbytes);
    }
    if (model) {
        cJSON *kv = cJSON_AddObjectToObject(model, "gguf_metadata");
        for (size_t i = 0; i < sm_gguf_n_kv(g); i++) cJSON_AddItemToObject(kv, sm_gguf_key(g, i), value_json(sm_gguf_val(g, i)));
    }
    sm_gguf_close(g);
    return rc;
}

static int collect_safetensors(src_file *s, cJSON *model) {
    sm_ckpt *c = sm_ckpt_new(SM_CKPT_SAFETENSORS, s->path);
    if (!c) return -1;
    cJSON *md = NULL;
    int rc = sm_safetensors_parse(s->map.data, s->map.size, s->path, c, &md);
    for (size_t i = 0; i < c->n_tensors && !rc; i++) {
        const sm_tensor *t = &c->tensors[i];
        const uint64_t off = t->nbytes ? (uint64_t)((const uint8_t *)t->data - (const uint8_t *)s->map.data) : 0;
        rc = add_tensor(&s->f, t->name, t->type, t->n_dims, t->shape, off, t->nbytes);
    }
    if (!rc && model && md) cJSON_AddItemToObject(model, s->f.name, md);
    else cJSON_Delete(md);
    sm_ckpt_close(c);
    return rc;
}

static int by_src_off(const void *a, const void *b) {
    const smelt_tensor *x = a, *y = b;
    return x->src_off < y->src_off ? -1 : x->src_off > y->src_off ? 1 : x->view.nbytes < y->view.nbytes ? -1 : 1;
}

static int open_src(src_file *s, const char *path, const char *name, cJSON *model) {
    memset(s, 0, sizeof *s);
    if (!(s->path = strdup(path)) || !(s->f.name = strdup(name))) return sm_error("out of memory");
    if (sm_mmap_open(&s->map, path)) return -1;
    s->f.size = s->map.size;
    if (s->map.size >= 8 && !memcmp(s->map.data, SM_SMELT_MAGIC, 8))
        return sm_error("%s: this is already a .smelt file (unpack it first)", path);
    const char *kind = smelt_kind_of(s->map.data, s->map.size);
    if (!(s->f.kind = strdup(kind))) return sm_error("out of memory");
    int rc = !strcmp(kind, "gguf") ? collect_gguf(s, model) : !strcmp(kind, "safetensors") ? collect_safetensors(s, model) : 0;
    if (rc) return -1;
    if (s->f.n_tensors) qsort(s->f.tensors, s->f.n_tensors, sizeof *s->f.tensors, by_src_off);
    uint64_t end = 0;
    for (size_t i = 0; i < s->f.n_tensors; i++) {
        const smelt_tensor *t = &s->f.tensors[i];
        if (t->src_off < end || t->view.nbytes > s->f.size - t->src_off)
            return sm_error("%s: tensor '%s' (offset %llu, %llu bytes) overlaps another or runs past the file", path,
                            t->view.name, (unsigned long long)t->src_off, (unsigned long long)t->view.nbytes);
        end = t->src_off + t->view.nbytes;
    }
    return 0;
}

static void src_close(src_file *s) {
    smelt_file_clear(&s->f);
    sm_mmap_close(&s->map);
    free(s->path);
}

/* ---- the encoder: batches of chunks ---- */

typedef struct job {
    smelt_tensor *t; /* a tensor's chunk (NULL: a rest chunk) */
    const uint8_t *src;
    uint8_t *gathered; /* owned copy (rest chunks) */
    size_t n;
    smelt_planes planes;
    smelt_chunk *dst;
    uint8_t *out;
    size_t out_n;
    char *err;
} job;

typedef struct packer {
    sm_outfile *o;
    const char *out_path;
    int level, threads;
    uint64_t chunk;
    ZSTD_CCtx **cctx;
    uint8_t **outs, **scratch; /* per job slot (chunk bound), per thread (chunk) */
    job *jobs;
    size_t n_jobs, cap_jobs;
    const sm_mmap *map;
    sm_progress prog;
    uint64_t done;
    /* checksums, computed in file order as the chunks are written (the bytes are still in cache) */
    XXH3_state_t *tensor_h, *file_h;
    uint64_t file_pos;
} packer;

/* the file's bytes [p->file_pos, end) into the file checksum */
static void hash_file_to(packer *p, uint64_t end) {
    if (end > p->file_pos) XXH3_64bits_update(p->file_h, (const uint8_t *)p->map->data + p->file_pos, (size_t)(end - p->file_pos));
    if (end > p->file_pos) p->file_pos = end;
}

static int flush(packer *p) {
    const long n = (long)p->n_jobs;
#pragma omp parallel for num_threads(p->threads) schedule(dynamic, 1) if (n > 1)
    for (long i = 0; i < n; i++) {
        job *j = &p->jobs[i];
        const int me = omp_get_thread_num();
        j->out = p->outs[i];
        if (smelt_chunk_encode(p->cctx[me], p->level, j->planes, j->src, j->n, p->scratch[me], j->out, &j->out_n))
            j->err = strdup(sm_last_error());
    }
    int rc = 0;
    for (size_t i = 0; i < p->n_jobs; i++) {
        job *j = &p->jobs[i];
        if (!rc && j->err) rc = sm_error("%s: compressing: %s", p->out_path, j->err);
        if (!rc && j->t) {
            const uint64_t at = (uint64_t)(j->src - (const uint8_t *)p->map->data);
            if (at == j->t->src_off) XXH3_64bits_reset(p->tensor_h);
            XXH3_64bits_update(p->tensor_h, j->src, j->n);
            if (at + j->n == j->t->src_off + j->t->view.nbytes) j->t->xxh = XXH3_64bits_digest(p->tensor_h);
            hash_file_to(p, at + j->n);
        }
        if (!rc) {
            j->dst->off = sm_outfile_tell(p->o);
            j->dst->size = j->out_n;
            rc = sm_outfile_write(p->o, j->out, j->out_n);
        }
        if (!j->gathered) sm_mmap_release(p->map, j->src, j->n);
        p->done += j->n;
        free(j->gathered);
        free(j->err);
    }
    p->n_jobs = 0;
    sm_progress_update(&p->prog, p->done);
    return rc;
}

static int add_job(packer *p, smelt_tensor *t, const uint8_t *src, uint8_t *gathered, size_t n, smelt_planes planes,
                   smelt_chunk *dst) {
    p->jobs[p->n_jobs++] = (job){t, src, gathered, n, planes, dst, NULL, 0, NULL};
    return p->n_jobs == p->cap_jobs ? flush(p) : 0;
}

static int alloc_chunks(smelt_tensor *t, uint64_t chunk) {
    t->chunk_size = chunk;
    t->n_chunks = (size_t)((t->view.nbytes + chunk - 1) / chunk);
    if (t->n_chunks && !(t->chunks = calloc(t->n_chunks, sizeof *t->chunks))) return sm_error("out of memory");
    return 0;
}

/* copies the next n bytes of the gaps between tensors (cursor: *pos in the file, *ti the next tensor) */
static void gather(const smelt_file *f, const uint8_t *base, uint64_t *pos, size_t *ti, uint8_t *dst, size_t n) {
    while (n) {
        while (*ti < f->n_tensors && f->tensors[*ti].src_off <= *pos) {
            const uint64_t end = f->tensors[*ti].src_off + f->tensors[*ti].view.nbytes;
            if (end > *pos) *pos = end;
            (*ti)++;
        }
        const uint64_t lim = *ti < f->n_tensors ? f->tensors[*ti].src_off : f->size;
        const size_t k = (size_t)(lim - *pos < n ? lim - *pos : n);
        memcpy(dst, base + *pos, k);
        dst += k, n -= k, *pos += k;
    }
}

static int pack_packed(packer *p, src_file *s) {
    smelt_file *f = &s->f;
    const uint8_t *base = s->map.data;
    uint64_t covered = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        smelt_tensor *t = &f->tensors[i];
        t->xxh = XXH3_64bits(NULL, 0); /* (set as its chunks are written) */
        t->planes = smelt_planes_for(t->view.type, t->view.nbytes);
        covered += t->view.nbytes;
        if (alloc_chunks(t, p->chunk)) return -1;
        for (size_t c = 0; c < t->n_chunks; c++) {
            const uint64_t o = c * p->chunk, n = t->view.nbytes - o < p->chunk ? t->view.nbytes - o : p->chunk;
            if (add_job(p, t, base + t->src_off + o, NULL, (size_t)n, t->planes, &t->chunks[c])) return -1;
        }
    }
    smelt_tensor *r = &f->rest;
    r->view.nbytes = f->size - covered;
    r->planes = SMELT_PLANES_NONE;
    if (alloc_chunks(r, p->chunk)) return -1;
    XXH3_state_t *st = XXH3_createState();
    if (!st) return sm_error("out of memory");
    XXH3_64bits_reset(st);
    uint64_t pos = 0;
    size_t ti = 0;
    int rc = 0;
    for (size_t c = 0; c < r->n_chunks && !rc; c++) {
        const uint64_t o = c * p->chunk, n = r->view.nbytes - o < p->chunk ? r->view.nbytes - o : p->chunk;
        uint8_t *buf = malloc((size_t)n);
        if (!buf) { rc = sm_error("out of memory"); break; }
        gather(f, base, &pos, &ti, buf, (size_t)n);
        XXH3_64bits_update(st, buf, (size_t)n);
        rc = add_job(p, NULL, buf, buf, (size_t)n, SMELT_PLANES_NONE, &r->chunks[c]);
    }
    r->xxh = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (!rc) rc = flush(p);
    hash_file_to(p, f->size);
    return rc;
}

static int pack_raw(packer *p, src_file *s) {
    smelt_file *f = &s->f;
    if (sm_outfile_pad_to(p->o, SMELT_RAW_ALIGN)) return -1;
    f->raw = true;
    f->off = sm_outfile_tell(p->o);
    for (size_t i = 0; i < f->n_tensors; i++) {
        smelt_tensor *t = &f->tensors[i];
        t->raw = true;
        t->off = f->off + t->src_off;
        t->xxh = XXH3_64bits((const uint8_t *)s->map.data + t->src_off, t->view.nbytes);
    }
    for (uint64_t o = 0; o < f->size; o += RAW_PIECE) {
        const uint64_t n = f->size - o < RAW_PIECE ? f->size - o : RAW_PIECE;
        const uint8_t *src = (const uint8_t *)s->map.data + o;
        hash_file_to(p, o + n);
        if (sm_outfile_write(p->o, src, (size_t)n)) return -1;
        sm_mmap_release(&s->map, src, n);
        p->done += n;
        sm_progress_update(&p->prog, p->done);
    }
    return 0;
}

/* ---- the header ---- */

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

static cJSON *file_json(const smelt_file *f) {
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
static void dir_model_json(const char *dir, cJSON *model) {
    static const char *const files[] = {"config.json", "generation_config.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char *p = sm_path_join(dir, files[i]), *text = NULL;
        size_t len;
        cJSON *j = p && sm_is_file(p) && !sm_read_file(p, (size_t)64 << 20, &text, &len) ? cJSON_Parse(text) : NULL;
        sm_clear_error();
        free(p);
        free(text);
        if (!j) continue;
        if (i < 2) {
            cJSON_AddItemToObject(model, i ? "generation_config" : "config", j);
            continue;
        }
        cJSON *tmpl = cJSON_DetachItemFromObject(j, "chat_template");
        if (tmpl) cJSON_AddItemToObject(model, "chat_template", tmpl);
        cJSON_Delete(j);
    }
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the regular files of a directory, sorted by name */
static int list_dir(const char *dir, char ***names, size_t *n) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return sm_error("%s: cannot open the directory", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = sm_path_join(dir, e->d_name);
        const bool reg = p && sm_is_file(p);
        free(p);
        if (!reg) continue; /* subdirectories are not packed */
        char **v = realloc(*names, (*n + 1) * sizeof *v);
        if (!v || !(v[*n] = strdup(e->d_name))) rc = sm_error("out of memory");
        if (v) *names = v;
        if (!rc) (*n)++;
    }
    closedir(d);
    if (!rc && *n) qsort(*names, *n, sizeof **names, by_name);
    return rc;
}

/* the last component of a path (trailing slashes ignored) into buf */
static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
    return buf;
}

static int write_header(packer *p, cJSON *h) {
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
    return rc ? rc : sm_outfile_write(p->o, tr, sizeof tr);
}

int sm_smelt_pack(const char *in, const char *out, const sm_smelt_pack_opts *o) {
    const sm_smelt_pack_opts def = {0};
    if (!o) o = &def;
    const bool dir = sm_is_dir(in);
    if (!dir && !sm_is_file(in)) return sm_error("%s: no such file or directory", in);
    cJSON *h = cJSON_CreateObject(), *model = cJSON_CreateObject();
    char **names = NULL;
    size_t n_src = 1;
    src_file *src = NULL;
    packer p = {.level = o->level ? o->level : SM_SMELT_DEFAULT_LEVEL, .out_path = out,
                .threads = o->threads > 0 ? o->threads : sm_num_threads(), .chunk = o->chunk_size ? o->chunk_size : SMELT_DEFAULT_CHUNK};
    int rc = 0;
    if (p.chunk % 4 || p.chunk > SMELT_MAX_CHUNK) rc = sm_error("chunk size %llu: expected a multiple of 4 up to %llu",
                                                                (unsigned long long)p.chunk, (unsigned long long)SMELT_MAX_CHUNK);
    if (!rc && dir) rc = list_dir(in, &names, &n_src);
    if (!rc && dir && !n_src) rc = sm_error("%s: the directory holds no files to pack", in);
    if (!rc && !(src = calloc(n_src, sizeof *src))) rc = sm_error("out of memory");
    uint64_t total = 0;
    char bn[256];
    for (size_t i = 0; i < n_src && !rc; i++) {
        char *path = dir ? sm_path_join(in, names[i]) : NULL;
        rc = dir && !path ? sm_error("out of memory") : open_src(&src[i], dir ? path : in, dir ? names[i] : base_name(in, bn, sizeof bn), model);
        free(path);
        total += src[i].f.size;
    }
    if (!rc && dir) dir_model_json(in, model);
    p.cap_jobs = (size_t)p.threads * BATCH_PER_THREAD;
    if (!rc && (!(p.jobs = calloc(p.cap_jobs, sizeof *p.jobs)) || !(p.cctx = calloc((size_t)p.threads, sizeof *p.cctx))))
        rc = sm_error("out of memory");
    if (!rc && (!(p.tensor_h = XXH3_createState()) || !(p.file_h = XXH3_createState()))) rc = sm_error("out of memory");
    if (!rc && (!(p.outs = calloc(p.cap_jobs, sizeof *p.outs)) || !(p.scratch = calloc((size_t)p.threads, sizeof *p.scratch))))
        rc = sm_error("out of memory");
    for (size_t i = 0; i < p.cap_jobs && !rc; i++)
        if (!(p.outs[i] = malloc(smelt_chunk_bound(SMELT_PLANES_B4, (size_t)p.chunk)))) rc = sm_error("out of memory");
    for (int i = 0; i < p.threads && !rc; i++)
        if (!(p.cctx[i] = ZSTD_createCCtx()) || !(p.scratch[i] = malloc((size_t)p.chunk))) rc = sm_error("out of memory");
    if (!rc && !(p.o = sm_outfile_open(out))) rc = -1;
    if (!rc) {
        uint8_t pre[SMELT_PREAMBLE] = {0};
        memcpy(pre, SM_SMELT_MAGIC, 8);
        pre[8] = SMELT_VERSION_MAJOR, pre[10] = SMELT_VERSION_MINOR;
        rc = sm_outfile_write(p.o, pre, sizeof pre);
    }
    sm_progress_begin(&p.prog, "pack", total, o->quiet);
    for (size_t i = 0; i < n_src && !rc; i++) {
        p.map = &src[i].map;
        p.file_pos = 0;
        XXH3_64bits_reset(p.file_h);
        rc = o->raw ? pack_raw(&p, &src[i]) : pack_packed(&p, &src[i]);
        src[i].f.xxh = XXH3_64bits_digest(p.file_h);
    }
    sm_progress_end(&p.prog);
    if (!rc) {
        cJSON_AddStringToObject(h, "format", "smelt");
        cJSON *v = cJSON_AddArrayToObject(h, "version");
        cJSON_AddItemToArray(v, cJSON_CreateNumber(SMELT_VERSION_MAJOR));
        cJSON_AddItemToArray(v, cJSON_CreateNumber(SMELT_VERSION_MINOR));
        cJSON *tool = cJSON_AddObjectToObject(h, "tool");
        cJSON_AddStringToObject(tool, "name", "smelt");
        cJSON_AddStringToObject(tool, "version", SM_VERSION);
        if (o->command_line) cJSON_AddStringToObject(tool, "command_line", o->command_line);
        cJSON *source = cJSON_AddObjectToObject(h, "source");
        cJSON_AddStringToObject(source, "name", base_name(in, bn, sizeof bn));
        cJSON_AddStringToObject(source, "kind", dir ? "directory" : src[0].f.kind);
        cJSON_AddItemToObject(h, "model", model);
        model = NULL;
        if (o->provenance) cJSON_AddItemToObject(h, "provenance", cJSON_Duplicate(o->provenance, true));
        cJSON *fs = cJSON_AddArrayToObject(h, "files");
        for (size_t i = 0; i < n_src; i++) cJSON_AddItemToArray(fs, file_json(&src[i].f));
        rc = write_header(&p, h);
    }
    if (!rc) rc = sm_outfile_commit(p.o);
    else sm_outfile_abort(p.o);
    for (size_t i = 0; i < p.n_jobs; i++) free(p.jobs[i].gathered);
    for (int i = 0; p.cctx && i < p.threads; i++) ZSTD_freeCCtx(p.cctx[i]);
    for (int i = 0; p.scratch && i < p.threads; i++) free(p.scratch[i]);
    for (size_t i = 0; p.outs && i < p.cap_jobs; i++) free(p.outs[i]);
    XXH3_freeState(p.tensor_h);
    XXH3_freeState(p.file_h);
    free(p.cctx);
    free(p.outs);
    free(p.scratch);
    free(p.jobs);
    for (size_t i = 0; src && i < n_src; i++) src_close(&src[i]);
    free(src);
    for (size_t i = 0; names && i < n_src; i++) free(names[i]);
    free(names);
    cJSON_Delete(model);
    cJSON_Delete(h);
    return rc;
}

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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#define RAW_PIECE ((uint64_t)64 << 20)

typedef struct src_file {
    smelt_file f;
    char *path;
    sm_mmap map;
} src_file;


static int collect_gguf(src_file *s, cJSON *model) {
    sm_gguf *g;
    if (sm_gguf_open(s->path, &g)) return -1;
    int rc = 0;
    for (size_t i = 0; i < sm_gguf_n_tensors(g) && !rc; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        rc = smelt_file_add_tensor(&s->f, t->name, t->type, t->n_dims, t->shape, sm_gguf_tensor_file_offset(g, t), t->nbytes);
    }
    if (model) {
        cJSON *kv = cJSON_AddObjectToObject(model, "gguf_metadata");
        for (size_t i = 0; i < sm_gguf_n_kv(g); i++) cJSON_AddItemToObject(kv, sm_gguf_key(g, i), smelt_value_json(sm_gguf_val(g, i)));
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
        rc = smelt_file_add_tensor(&s->f, t->name, t->type, t->n_dims, t->shape, off, t->nbytes);
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

static int pack_packed(smelt_packer *p, src_file *s) {
    smelt_file *f = &s->f;
    const uint8_t *base = s->map.data;
    uint64_t covered = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        smelt_tensor *t = &f->tensors[i];
        t->xxh = XXH3_64bits(NULL, 0); /* (set as its chunks are written) */
        t->planes = smelt_planes_for(t->view.type, t->view.nbytes);
        covered += t->view.nbytes;
        if (smelt_alloc_chunks(t, p->chunk)) return -1;
        for (size_t c = 0; c < t->n_chunks; c++) {
            const uint64_t o = c * p->chunk, n = t->view.nbytes - o < p->chunk ? t->view.nbytes - o : p->chunk;
            if (smelt_packer_add(p, t, base + t->src_off + o, NULL, (size_t)n, t->planes, &t->chunks[c])) return -1;
        }
    }
    smelt_tensor *r = &f->rest;
    r->view.nbytes = f->size - covered;
    r->planes = SMELT_PLANES_NONE;
    if (smelt_alloc_chunks(r, p->chunk)) return -1;
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
        rc = smelt_packer_add(p, NULL, buf, buf, (size_t)n, SMELT_PLANES_NONE, &r->chunks[c]);
    }
    r->xxh = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (!rc) rc = smelt_packer_flush(p);
    smelt_packer_hash_to(p, f->size);
    return rc;
}

static int pack_raw(smelt_packer *p, src_file *s) {
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
        smelt_packer_hash_to(p, o + n);
        if (sm_outfile_write(p->o, src, (size_t)n)) return -1;
        sm_mmap_release(&s->map, src, n);
        p->done += n;
        sm_progress_update(&p->prog, p->done);
    }
    return 0;
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

int sm_smelt_pack(const char *in, const char *out, const sm_smelt_pack_opts *o) {
    const sm_smelt_pack_opts def = {0};
    if (!o) o = &def;
    const bool dir = sm_is_dir(in);
    if (!dir && !sm_is_file(in)) return sm_error("%s: no such file or directory", in);
    cJSON *h = NULL, *model = cJSON_CreateObject();
    char **names = NULL;
    size_t n_src = 1;
    src_file *src = NULL;
    smelt_packer p;
    int rc = smelt_packer_init(&p, out, o->level, o->threads, o->chunk_size);
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
    sm_progress_begin(&p.prog, "pack", total, o->quiet);
    for (size_t i = 0; i < n_src && !rc; i++) {
        p.map = &src[i].map;
        p.file_pos = 0;
        XXH3_64bits_reset(p.file_h);
        rc = o->raw ? pack_raw(&p, &src[i]) : pack_packed(&p, &src[i]);
        smelt_packer_release(&p);
        src[i].f.xxh = XXH3_64bits_digest(p.file_h);
    }
    sm_progress_end(&p.prog);
    if (!rc) {
        h = smelt_header_new(base_name(in, bn, sizeof bn), dir ? "directory" : src[0].f.kind, o->command_line, model,
                             o->provenance);
        model = NULL;
        if (!h) rc = sm_error("out of memory");
        for (size_t i = 0; i < n_src && !rc; i++) cJSON_AddItemToArray(cJSON_GetObjectItem(h, "files"), smelt_file_json(&src[i].f));
        if (!rc) rc = smelt_packer_commit(&p, h);
    }
    smelt_packer_free(&p);
    for (size_t i = 0; src && i < n_src; i++) src_close(&src[i]);
    free(src);
    for (size_t i = 0; names && i < n_src; i++) free(names[i]);
    free(names);
    cJSON_Delete(model);
    cJSON_Delete(h);
    return rc;
}
